package natsperm_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"github.com/jobwire/jobwire/internal/natstest"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jobwire/jobwire/internal/natsconn"
	"github.com/jobwire/jobwire/shared/jobs"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestConfigNeedsEveryPassword: without one of the password variables the
// server does not start (it does not, say, drop that user's password).
// Not parallel: it changes the environment (restored before the parallel
// tests run).
func TestConfigNeedsEveryPassword(t *testing.T) {
	for user := range passwords {
		key := "JOBWIRE_" + strings.ToUpper(user) + "_PASSWORD"
		t.Run(key, func(t *testing.T) {
			t.Setenv(key, "") // restores the value at the end
			os.Unsetenv(key)
			_, err := server.ProcessConfigFile(configFile)
			if err == nil || !strings.Contains(err.Error(), key) {
				t.Fatalf("config without %s: %v, want an error naming it", key, err)
			}
		})
	}
}

func TestAuthentication(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	for name, opts := range map[string][]nats.Option{
		"no credentials": nil,
		"wrong password": {nats.UserInfo("gateway", passwords["runner"])},
		"unknown user":   {nats.UserInfo("admin", passwords["gateway"])},
	} {
		nc, err := nats.Connect(s.ClientURL(), append(opts, nats.NoReconnect())...)
		if err == nil {
			nc.Close()
			t.Errorf("%s: connected", name)
		} else if !errors.Is(err, nats.ErrAuthorization) {
			t.Errorf("%s: %v, want an authorization violation", name, err)
		}
	}

	// A password file as Kubernetes mounts it (here with a line break).
	file := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(file, []byte(passwords["runner"]+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	opts, err := natsconn.Auth{User: "runner", PasswordFile: file, InboxPrefix: "_INBOX_runner"}.Options()
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(s.ClientURL(), opts...)
	if err != nil {
		t.Fatalf("connect with a password file: %v", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	// A JetStream request the runner may make, answered: no such stream yet.
	if _, err := js.Stream(testContext(t, 5*time.Second), jobs.Stream); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("JetStream request as runner with a password file: %v, want stream not found", err)
	}
}

// TestConnectKeepsSecretsAndReportsViolations: natsconn.Connect never
// prints a password given in the URL, and logs permissions violations.
func TestConnectKeepsSecretsAndReportsViolations(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	var logs natstest.LockedBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	const secret = "Wr0ngButSecret"
	url := strings.Replace(s.ClientURL(), "nats://", "nats://gateway:"+secret+"@", 1)
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	_, err := natsconn.Connect(ctx, url, "test", log)
	if err == nil {
		t.Fatal("connected with a wrong password")
	}
	if strings.Contains(err.Error(), secret) || strings.Contains(logs.String(), secret) {
		t.Fatalf("the password leaked: error %q, log %q", err, logs.String())
	}
	if !strings.Contains(err.Error(), "gateway:xxxxx@") {
		t.Errorf("error %q does not name the (redacted) url", err)
	}

	logs.Reset()
	opts, err := natsconn.Auth{User: "observer", Password: passwords["observer"], InboxPrefix: "_INBOX_observer"}.Options()
	if err != nil {
		t.Fatal(err)
	}
	nc, err := natsconn.Connect(testContext(t, 5*time.Second), s.ClientURL(), "test", log, opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := nc.Publish("jobs.x.progress", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the violation in the log", func() bool {
		return strings.Contains(logs.String(), `Permissions Violation for Publish to \"jobs.x.progress\"`)
	})
}

func TestAuthSettings(t *testing.T) {
	t.Parallel()
	const secret = "hunter2-Secret"
	a := natsconn.Auth{User: "gateway", Password: secret, InboxPrefix: "_INBOX_gateway", CAFile: "/ca.pem"}
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("settings", "nats", a)
	for _, out := range []string{fmt.Sprint(a), fmt.Sprintf("%v %+v %#v %s", a, a, a, &a), logs.String()} {
		if strings.Contains(out, secret) {
			t.Errorf("password printed: %s", out)
		}
		if !strings.Contains(out, "user=gateway") {
			t.Errorf("settings not described: %s", out)
		}
	}

	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		auth natsconn.Auth
		want string // in the error; "" means no error
	}{
		{"nothing", natsconn.Auth{}, ""},
		{"user and password", natsconn.Auth{User: "u", Password: "p"}, ""},
		{"user without password", natsconn.Auth{User: "u"}, "NATS_USER needs"},
		{"password without user", natsconn.Auth{Password: "p"}, "needs NATS_USER"},
		{"password twice", natsconn.Auth{User: "u", Password: "p", PasswordFile: empty}, "not both"},
		{"two methods", natsconn.Auth{User: "u", Password: "p", CredsFile: "x.creds"}, "one way"},
		{"cert without key", natsconn.Auth{CertFile: "c.pem"}, "go together"},
		{"wildcard inbox", natsconn.Auth{InboxPrefix: "_INBOX.>"}, "NATS_INBOX_PREFIX"},
		{"empty password file", natsconn.Auth{User: "u", PasswordFile: empty}, "is empty"},
		{"missing password file", natsconn.Auth{User: "u", PasswordFile: filepath.Join(dir, "nope")}, "no such file"},
		{"missing creds", natsconn.Auth{CredsFile: filepath.Join(dir, "nope.creds")}, "NATS_CREDS"},
		{"bad nkey seed", natsconn.Auth{NKeyFile: empty}, "NATS_NKEY_FILE"},
		{"missing ca", natsconn.Auth{CAFile: filepath.Join(dir, "ca.pem")}, "ca.pem"},
		{"ca not pem", natsconn.Auth{CAFile: empty}, "root certificate"},
	} {
		_, err := tc.auth.Options()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want one with %q", tc.name, err, tc.want)
		}
	}
	if err := (natsconn.Auth{User: "u", Password: "p", CredsFile: "c", CertFile: "x"}).Validate(); err == nil || strings.Count(err.Error(), "\n") < 1 {
		t.Errorf("Validate reports every problem at once: %v", err)
	}
	if got := natsconn.RedactURL("nats://u:pw@a:4222, nats://tok@b:4222,nats://c:4222"); strings.Contains(got, "pw") || strings.Contains(got, "tok") {
		t.Errorf("RedactURL: %s", got)
	}
}

// TestTLS: with the configuration's commented tls block switched on
// (client certificates verified), a service connects with NATS_CA,
// NATS_CERT and NATS_KEY, and not without its certificate or the CA.
func TestTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca, caKey := writeCA(t, dir)
	writeCert(t, dir, "server", ca, caKey, x509.ExtKeyUsageServerAuth)
	writeCert(t, dir, "client", ca, caKey, x509.ExtKeyUsageClientAuth)
	file := func(name string) string { return filepath.Join(dir, name) }
	s := startServer(t, func(o *server.Options) {
		tc, err := server.GenTLSConfig(&server.TLSConfigOpts{
			CertFile: file("server.crt"), KeyFile: file("server.key"), CaFile: file("ca.crt"), Verify: true,
		})
		if err != nil {
			t.Fatal(err)
		}
		o.TLSConfig, o.TLS, o.TLSVerify, o.TLSTimeout = tc, true, true, 2
	})

	auth := natsconn.Auth{
		User: "observer", Password: passwords["observer"], InboxPrefix: "_INBOX_observer",
		CAFile: file("ca.crt"), CertFile: file("client.crt"), KeyFile: file("client.key"),
	}
	opts, err := auth.Options()
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(s.ClientURL(), opts...)
	if err != nil {
		t.Fatalf("connect with TLS: %v", err)
	}
	defer nc.Close()
	state, err := nc.TLSConnectionState()
	if err != nil || !state.HandshakeComplete || len(state.PeerCertificates) == 0 {
		t.Fatalf("TLS state: %+v %v", state, err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	for name, a := range map[string]natsconn.Auth{
		"without a client certificate": {User: auth.User, Password: auth.Password, CAFile: auth.CAFile},
		"without the CA":               {User: auth.User, Password: auth.Password, CertFile: auth.CertFile, KeyFile: auth.KeyFile},
	} {
		opts, err := a.Options()
		if err != nil {
			t.Fatal(err)
		}
		if nc, err := nats.Connect(s.ClientURL(), append(opts, nats.NoReconnect())...); err == nil {
			nc.Close()
			t.Errorf("%s: connected", name)
		}
	}
}

func writeCA(t *testing.T, dir string) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "jobwire test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, filepath.Join(dir, "ca.crt"), "CERTIFICATE", der)
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return ca, key
}

func writeCert(t *testing.T, dir, name string, ca *x509.Certificate, caKey *ecdsa.PrivateKey, usage x509.ExtKeyUsage) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, filepath.Join(dir, name+".crt"), "CERTIFICATE", der)
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, filepath.Join(dir, name+".key"), "PRIVATE KEY", kb)
}

func writePEM(t *testing.T, file, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}
