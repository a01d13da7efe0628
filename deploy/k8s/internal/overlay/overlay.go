// Package overlay renders an overlay of deploy/k8s with kustomize's API
// (what `kubectl apply -k` runs), in memory, with each overlay's
// secrets.env made from the committed secrets.env.example: the objects
// the tests, kubeconform and deploy/k8s/keda check.
package overlay

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/resmap"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// Names are the overlays under overlays/.
var Names = []string{"dev", "prod"}

// Render builds overlays/<name> of the deploy/k8s folder at root. A real
// secrets.env beside the example is ignored: the example's placeholder
// values are rendered instead, so nothing secret leaves this function.
func Render(root, name string) (resmap.ResMap, error) {
	mem := filesys.MakeFsInMemory()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		if !strings.HasPrefix(rel, "base"+string(filepath.Separator)) && !strings.HasPrefix(rel, "overlays"+string(filepath.Separator)) || filepath.Base(rel) == "secrets.env" {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel = strings.TrimSuffix(rel, ".example") // secrets.env.example -> secrets.env
		return mem.WriteFile(filepath.Join("/k", rel), b)
	})
	if err != nil {
		return nil, err
	}
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(mem, "/k/overlays/"+name)
	if err != nil {
		return nil, fmt.Errorf("kustomize build overlays/%s: %w", name, err)
	}
	return m, nil
}
