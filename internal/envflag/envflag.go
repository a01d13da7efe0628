// Package envflag defines command-line flags whose defaults come from
// environment variables, and collects every configuration problem so they
// can be reported together.
package envflag

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"time"
)

// Set is a flag set whose defaults are read through getenv.
type Set struct {
	fs     *flag.FlagSet
	getenv func(string) string
	errs   []error
}

// New makes an empty set; usage goes to stderr.
func New(name string, getenv func(string) string, stderr io.Writer) *Set {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return &Set{fs: fs, getenv: getenv}
}

func (s *Set) env(key, def string) string {
	if v := s.getenv(key); v != "" {
		return v
	}
	return def
}

func usage(text, key string) string { return text + " (env " + key + ")" }

// String defines a string flag name defaulting to env key, then def.
func (s *Set) String(p *string, name, key, def, text string) {
	s.fs.StringVar(p, name, s.env(key, def), usage(text, key))
}

// Bool defines a boolean flag; def is its default (false when left out).
func (s *Set) Bool(p *bool, name, key string, text string, def ...bool) {
	v, err := strconv.ParseBool(s.env(key, strconv.FormatBool(len(def) > 0 && def[0])))
	if err != nil {
		s.Errorf("%s: %q is not true or false", key, s.getenv(key))
	}
	s.fs.BoolVar(p, name, v, usage(text, key))
}

// Int defines an integer flag.
func (s *Set) Int(p *int64, name, key string, def int64, text string) {
	v, err := strconv.ParseInt(s.env(key, strconv.FormatInt(def, 10)), 10, 64)
	if err != nil {
		s.Errorf("%s: %q is not a whole number", key, s.getenv(key))
		v = def
	}
	s.fs.Int64Var(p, name, v, usage(text, key))
}

// Duration defines a duration flag ("30s", "5m").
func (s *Set) Duration(p *time.Duration, name, key string, def time.Duration, text string) {
	v, err := time.ParseDuration(s.env(key, def.String()))
	if err != nil {
		s.Errorf("%s: %q is not a duration like 30s or 5m", key, s.getenv(key))
		v = def
	}
	s.fs.DurationVar(p, name, v, usage(text, key))
}

// Env reads the environment variable key into p (def when unset or
// empty), without a flag: for settings that are standard environment
// variables of their own (OTEL_*), not jobwire's.
func (s *Set) Env(p *string, key, def string) { *p = s.env(key, def) }

// Errorf records a configuration problem.
func (s *Set) Errorf(format string, args ...any) {
	s.errs = append(s.errs, fmt.Errorf(format, args...))
}

// Check records msg as a problem unless ok.
func (s *Set) Check(ok bool, msg string) {
	if !ok {
		s.errs = append(s.errs, errors.New(msg))
	}
}

// ErrHelp is what Parse returns for -h or --help, after printing the
// usage: the program should stop and exit 0.
var ErrHelp = flag.ErrHelp

// Parse reads the command line. A bad flag or -h (ErrHelp) ends parsing
// at once; otherwise Err reports everything found later.
func (s *Set) Parse(args []string) error {
	if err := s.fs.Parse(args); err != nil {
		return err
	}
	if s.fs.NArg() > 0 {
		s.Errorf("unexpected arguments: %v", s.fs.Args())
	}
	return nil
}

// Err returns every problem recorded, joined, or nil.
func (s *Set) Err() error { return errors.Join(s.errs...) }
