// Command jobwire-healthcheck is the health check of jobwire's container
// images, which have no shell and no curl: it GETs one URL and exits 0 when
// the answer is 2xx, 1 otherwise (a Docker HEALTHCHECK's "unhealthy").
//
//	jobwire-healthcheck http://127.0.0.1:8080/readyz
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "jobwire-healthcheck:", err)
		os.Exit(1)
	}
}

// timeout bounds the whole check, well inside a HEALTHCHECK's default 30s.
const timeout = 3 * time.Second

func run(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) != 1 {
		return errors.New("usage: jobwire-healthcheck URL (exits 0 when a GET answers 2xx)")
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, args[0], nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("%s: %s %s", args[0], resp.Status, body)
	}
	fmt.Fprintf(stdout, "%s: %s\n", args[0], resp.Status)
	return nil
}
