// Command render prints an overlay of deploy/k8s as `kubectl kustomize`
// would, with secrets.env made from secrets.env.example (placeholder
// values): the manifests deploy/k8s's tests check, for tools outside this
// module (deploy/k8s/keda's test, the Docker test of deploy/docker).
//
//	go run ./cmd/render dev            # YAML, documents separated by ---
//	go run ./cmd/render -json prod     # a JSON array of the objects
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"

	"github.com/jobwire/jobwire/deploy/k8s/internal/overlay"
)

func main() {
	asJSON := flag.Bool("json", false, "print a JSON array instead of YAML")
	root := flag.String("root", ".", "the deploy/k8s folder")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintf(os.Stderr, "usage: render [-json] [-root DIR] OVERLAY (one of %v)\n", overlay.Names)
		os.Exit(2)
	}
	if err := run(*root, flag.Arg(0), *asJSON); err != nil {
		fmt.Fprintln(os.Stderr, "render:", err)
		os.Exit(1)
	}
}

func run(root, name string, asJSON bool) error {
	m, err := overlay.Render(root, name)
	if err != nil {
		return err
	}
	if !asJSON {
		b, err := m.AsYaml()
		if err != nil {
			return err
		}
		_, err = os.Stdout.Write(b)
		return err
	}
	var objs []map[string]any
	for _, r := range m.Resources() {
		o, err := r.Map()
		if err != nil {
			return err
		}
		objs = append(objs, o)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(objs)
}
