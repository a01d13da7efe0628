package envflag_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/jobwire/jobwire/internal/envflag"
)

func TestHelpIsErrHelpAfterTheUsage(t *testing.T) {
	for _, arg := range []string{"-h", "--help", "-help"} {
		var out strings.Builder
		s := envflag.New("prog", func(string) string { return "" }, &out)
		var addr string
		s.String(&addr, "addr", "ADDR", ":80", "listen address")
		if err := s.Parse([]string{arg}); !errors.Is(err, envflag.ErrHelp) {
			t.Errorf("Parse(%s) = %v, want ErrHelp", arg, err)
		}
		if !strings.Contains(out.String(), "-addr") || !strings.Contains(out.String(), "env ADDR") {
			t.Errorf("Parse(%s) printed %q, want the usage", arg, out.String())
		}
	}
}
