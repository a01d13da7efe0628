// Package natsconn opens the NATS connections of jobwire's services.
package natsconn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/jobwire/jobwire/internal/backoff"
	"github.com/jobwire/jobwire/internal/envflag"
	"github.com/nats-io/nats.go"
)

// Connect opens a connection that keeps reconnecting forever, waiting for
// the first connection as long as ctx allows. It pings the server every
// pingInterval and gives the connection up after maxPingsOut unanswered
// pings: a server cut off the network (no FIN, no RST) is left within about
// 15 s for another node of the cluster, not after nats.go's default 4 min. Asynchronous errors (such as
// a permissions violation) are logged unless opts set an ErrorHandler.
// Credentials in url are never logged or returned in errors.
func Connect(ctx context.Context, url, name string, log *slog.Logger, opts ...nats.Option) (*nats.Conn, error) {
	opts = append([]nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500 * time.Millisecond),
		nats.PingInterval(pingInterval),
		nats.MaxPingsOutstanding(maxPingsOut),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) { log.Info("nats reconnected", "url", nc.ConnectedUrlRedacted()) }),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			if sub != nil {
				log.Error("nats error", "subject", sub.Subject, "err", err)
				return
			}
			log.Error("nats error", "err", err)
		}),
	}, opts...)
	safeURL := RedactURL(url)
	wait := backoff.Backoff{Base: 500 * time.Millisecond, Max: 10 * time.Second}
	warn := backoff.Warner{Log: log}
	for {
		nc, err := nats.Connect(url, opts...)
		if err == nil {
			return nc, nil
		}
		warn.Warn("waiting for nats", err, "url", safeURL)
		if !wait.Wait(ctx) {
			return nil, fmt.Errorf("connect to nats at %s: %w", safeURL, err)
		}
	}
}

// How often Connect's connections ping the server, and how many pings
// may go unanswered before the connection counts as dead.
const (
	pingInterval = 5 * time.Second
	maxPingsOut  = 3
)

// RedactURL hides the passwords and tokens in a comma-separated list of
// NATS URLs, as nats.Conn.ConnectedUrlRedacted does.
func RedactURL(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		u, err := url.Parse(strings.TrimSpace(p))
		if err != nil {
			if strings.Contains(p, "@") {
				parts[i] = "(unparsable url with credentials)"
			}
			continue
		}
		if u.User == nil {
			continue
		}
		if _, hasPassword := u.User.Password(); hasPassword {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		} else {
			u.User = url.User("xxxxx") // a token
		}
		parts[i] = u.String()
	}
	return strings.Join(parts, ",")
}

// Retry calls f until it succeeds or ctx ends, each call bounded to 10s,
// waiting longer after each failure (from about 0.5s up to 30s, with
// jitter). A failure that repeats is logged once a minute.
func Retry(ctx context.Context, log *slog.Logger, what string, f func(ctx context.Context) error) error {
	wait := backoff.Backoff{Base: time.Second, Max: 30 * time.Second}
	warn := backoff.Warner{Log: log}
	for {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := f(cctx)
		cancel()
		if err == nil {
			return nil
		}
		warn.Warn("retrying", err, "what", what, "failures", wait.Failures()+1)
		if !wait.Wait(ctx) {
			return fmt.Errorf("%s: %w", what, err)
		}
	}
}

// Auth is how a service authenticates to NATS and checks the server. The
// zero value means no credentials and no TLS settings (a tls:// URL still
// uses TLS with the system's roots). Files are read by Options, so
// Kubernetes secrets mounted as files work; the password file is read
// again on every reconnect, so a rotated secret is picked up.
//
// Use one way to authenticate: User with Password or PasswordFile, or
// CredsFile, or NKeyFile. With deploy/nats/nats.conf, set InboxPrefix to
// "_INBOX_" and the user name: each user may only receive on its own
// inbox prefix.
//
// Auth never prints its password: String, GoString and LogValue redact it.
type Auth struct {
	User         string // NATS_USER
	Password     string // NATS_PASSWORD
	PasswordFile string // NATS_PASSWORD_FILE: a file holding the password
	CredsFile    string // NATS_CREDS: a .creds file (user JWT and nkey seed)
	NKeyFile     string // NATS_NKEY_FILE: a file holding a user nkey seed
	InboxPrefix  string // NATS_INBOX_PREFIX: prefix of reply subjects (default _INBOX)
	CAFile       string // NATS_CA: PEM CA certificates the server's certificate must chain to (turns TLS on)
	CertFile     string // NATS_CERT: PEM client certificate, for servers that verify clients
	KeyFile      string // NATS_KEY: its PEM private key
}

// RegisterFlags defines the flags (with their environment variables) that
// fill a.
func (a *Auth) RegisterFlags(s *envflag.Set) {
	s.String(&a.User, "nats-user", "NATS_USER", "", "NATS user name")
	s.String(&a.Password, "nats-password", "NATS_PASSWORD", "", "NATS password (prefer NATS_PASSWORD_FILE)")
	s.String(&a.PasswordFile, "nats-password-file", "NATS_PASSWORD_FILE", "", "file holding the NATS password")
	s.String(&a.CredsFile, "nats-creds", "NATS_CREDS", "", "NATS credentials file (.creds: user JWT and nkey seed)")
	s.String(&a.NKeyFile, "nats-nkey-file", "NATS_NKEY_FILE", "", "file holding a NATS user nkey seed")
	s.String(&a.InboxPrefix, "nats-inbox-prefix", "NATS_INBOX_PREFIX", "", "prefix of the NATS reply subjects (deploy/nats/nats.conf: _INBOX_<user>)")
	s.String(&a.CAFile, "nats-ca", "NATS_CA", "", "PEM file of the CA certificates that verify the NATS server (turns TLS on)")
	s.String(&a.CertFile, "nats-cert", "NATS_CERT", "", "PEM client certificate for NATS (with NATS_KEY)")
	s.String(&a.KeyFile, "nats-key", "NATS_KEY", "", "PEM private key of NATS_CERT")
}

// Validate reports every inconsistent combination of settings, without
// reading any file.
func (a Auth) Validate() error {
	var errs []error
	if a.Password != "" && a.PasswordFile != "" {
		errs = append(errs, errors.New("set NATS_PASSWORD or NATS_PASSWORD_FILE, not both"))
	}
	hasPassword := a.Password != "" || a.PasswordFile != ""
	if a.User != "" && !hasPassword {
		errs = append(errs, errors.New("NATS_USER needs NATS_PASSWORD or NATS_PASSWORD_FILE"))
	}
	if a.User == "" && hasPassword {
		errs = append(errs, errors.New("NATS_PASSWORD or NATS_PASSWORD_FILE needs NATS_USER"))
	}
	methods := 0
	for _, set := range []bool{a.User != "" || hasPassword, a.CredsFile != "", a.NKeyFile != ""} {
		if set {
			methods++
		}
	}
	if methods > 1 {
		errs = append(errs, errors.New("use one way to authenticate to NATS: NATS_USER with a password, NATS_CREDS or NATS_NKEY_FILE"))
	}
	if (a.CertFile == "") != (a.KeyFile == "") {
		errs = append(errs, errors.New("NATS_CERT and NATS_KEY go together"))
	}
	if p := a.InboxPrefix; p != "" && (strings.ContainsAny(p, "*> \t\r\n") || strings.HasPrefix(p, ".") || strings.HasSuffix(p, ".") || strings.Contains(p, "..")) {
		errs = append(errs, fmt.Errorf("NATS_INBOX_PREFIX %q is not a subject prefix without wildcards", p))
	}
	return errors.Join(errs...)
}

// Options validates a, reads its files and returns the connection options
// that carry it out. Errors name files, never their contents.
func (a Auth) Options() ([]nats.Option, error) {
	if err := a.Validate(); err != nil {
		return nil, err
	}
	var opts []nats.Option
	switch {
	case a.PasswordFile != "":
		pw, err := readPassword(a.PasswordFile)
		if err != nil {
			return nil, err
		}
		opts = append(opts, nats.UserInfoHandler(passwordFromFile(a.User, a.PasswordFile, pw)))
	case a.User != "":
		opts = append(opts, nats.UserInfo(a.User, a.Password))
	case a.CredsFile != "":
		if err := readable(a.CredsFile, "NATS_CREDS"); err != nil {
			return nil, err
		}
		opts = append(opts, nats.UserCredentials(a.CredsFile))
	case a.NKeyFile != "":
		opt, err := nats.NkeyOptionFromSeed(a.NKeyFile)
		if err != nil {
			return nil, fmt.Errorf("NATS_NKEY_FILE %s: %w", a.NKeyFile, err)
		}
		opts = append(opts, opt)
	}
	if a.InboxPrefix != "" {
		opts = append(opts, nats.CustomInboxPrefix(a.InboxPrefix))
	}
	// nats.go loads these files again for every (re)connection, so
	// renewed certificates are used without a restart.
	if a.CAFile != "" {
		opts = append(opts, nats.RootCAs(a.CAFile))
	}
	if a.CertFile != "" {
		opts = append(opts, nats.ClientCert(a.CertFile, a.KeyFile))
	}
	// Apply them once now, so a bad file fails at start-up with a clear
	// error rather than at the first connection attempt.
	var check nats.Options
	for _, o := range opts {
		if err := o(&check); err != nil {
			return nil, fmt.Errorf("nats settings: %w", err)
		}
	}
	return opts, nil
}

// readPassword reads a password file, dropping one trailing line break.
func readPassword(file string) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("NATS_PASSWORD_FILE: %w", err)
	}
	pw := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	if pw == "" {
		return "", fmt.Errorf("NATS_PASSWORD_FILE %s is empty", file)
	}
	return pw, nil
}

// passwordFromFile returns the user and the file's current password; if
// the file cannot be read (mid-rotation), the last password read.
func passwordFromFile(user, file, first string) nats.UserInfoCB {
	var mu sync.Mutex
	last := first
	return func() (string, string) {
		mu.Lock()
		defer mu.Unlock()
		if pw, err := readPassword(file); err == nil {
			last = pw
		}
		return user, last
	}
}

func readable(file, what string) error {
	f, err := os.Open(file)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return f.Close()
}

// String describes a without secrets.
func (a Auth) String() string {
	var parts []string
	add := func(k, v string) {
		if v != "" {
			parts = append(parts, k+"="+v)
		}
	}
	add("user", a.User)
	if a.Password != "" {
		add("password", "[redacted]")
	}
	add("password_file", a.PasswordFile)
	add("creds", a.CredsFile)
	add("nkey_file", a.NKeyFile)
	add("inbox_prefix", a.InboxPrefix)
	add("ca", a.CAFile)
	add("cert", a.CertFile)
	add("key", a.KeyFile)
	return "natsconn.Auth{" + strings.Join(parts, " ") + "}"
}

// GoString is String, so %#v does not print the password either.
func (a Auth) GoString() string { return a.String() }

// LogValue is what log/slog prints for a: no password.
func (a Auth) LogValue() slog.Value { return slog.StringValue(a.String()) }
