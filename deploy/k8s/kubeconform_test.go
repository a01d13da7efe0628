package k8s_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/jobwire/jobwire/deploy/k8s/internal/schemas"
)

// kubeconform is the pinned validator, built from the Go module proxy by
// `go run` (cached after the first build).
const kubeconform = "github.com/yannh/kubeconform/cmd/kubeconform@v0.8.0"

// goCmd runs the go command outside this module (GOFLAGS and GOWORK
// cleared), bounded, and returns its standard output.
func goCmd(t *testing.T, dir string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=", "GOWORK=off")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out
}

// moduleDir downloads a module through the module proxy (or finds it in
// the module cache) and returns where its files are.
func moduleDir(t *testing.T, dir, module string) string {
	var m struct{ Dir, Version, Error string }
	if err := json.Unmarshal(goCmd(t, dir, "mod", "download", "-json", module), &m); err != nil || m.Dir == "" {
		t.Fatalf("go mod download %s: %v %s", module, err, m.Error)
	}
	return m.Dir
}

// schemaDir generates strict schemas offline: every kind of the Kubernetes
// release whose API types this module decodes into (k8s.io/api v0.X.Y is
// Kubernetes v1.X.Y: the swagger.json inside the k8s.io/kubernetes module
// of that version), and KEDA's ScaledObject from the CRD in the KEDA
// module deploy/k8s/keda requires.
func schemaDir(t *testing.T) string {
	apiVersion := strings.TrimSpace(string(goCmd(t, ".", "list", "-m", "-f", "{{.Version}}", "k8s.io/api")))
	minor, ok := strings.CutPrefix(apiVersion, "v0.")
	if !ok {
		t.Fatalf("k8s.io/api %s: want v0.X.Y", apiVersion)
	}
	kube := moduleDir(t, t.TempDir(), "k8s.io/kubernetes@v1."+minor)
	swagger, err := os.ReadFile(filepath.Join(kube, "api/openapi-spec/swagger.json"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	n, err := schemas.FromSwagger(swagger, dir)
	if err != nil {
		t.Fatal(err)
	}
	keda := moduleDir(t, "keda", "github.com/kedacore/keda/v2")
	crd, err := os.ReadFile(filepath.Join(keda, "config/crd/bases/keda.sh_scaledobjects.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := schemas.FromCRD(crd, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d schemas of Kubernetes v1.%s and %d of KEDA's ScaledObject in %s", n, minor, m, dir)
	return dir
}

// kubeconformResult is one object of kubeconform's JSON output.
type kubeconformResult struct {
	Kind, Name, Status, Msg string
}

// runKubeconform validates a YAML stream strictly against the schemas in
// dir and returns each object's result and whether kubeconform passed.
func runKubeconform(t *testing.T, dir string, manifests []byte) ([]kubeconformResult, bool) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "manifests.yaml")
	if err := os.WriteFile(file, manifests, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "run", kubeconform,
		"-strict", "-summary", "-verbose", "-output", "json", "-schema-location", schemas.Location(dir), file)
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "GOFLAGS=", "GOWORK=off")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var exit *exec.ExitError
	if err != nil && (!errors.As(err, &exit) || ctx.Err() != nil) {
		t.Fatalf("kubeconform: %v\n%s", err, stderr.String())
	}
	var res struct {
		Resources []kubeconformResult
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("kubeconform output: %v\n%s\n%s", err, out, stderr.String())
	}
	return res.Resources, err == nil
}

// TestKubeconform validates every rendered overlay with kubeconform
// -strict against the generated schemas: every object has a schema (none
// skipped) and passes. Then it feeds objects that are wrong in ways the
// strict decode of render_test.go would also catch, and some it would
// not, and expects kubeconform to refuse each: the schemas are strict,
// and a kind without a schema is an error, not a skip.
func TestKubeconform(t *testing.T) {
	dir := schemaDir(t)
	var dev *rendered
	for _, o := range []string{"dev", "prod"} {
		r := render(t, o)
		if o == "dev" {
			dev = r
		}
		results, ok := runKubeconform(t, dir, r.yaml)
		if len(results) != len(r.all) {
			t.Errorf("overlays/%s: kubeconform saw %d objects, kustomize rendered %d", o, len(results), len(r.all))
		}
		for _, res := range results {
			if res.Status != "statusValid" {
				t.Errorf("overlays/%s: %s %s: %s %s", o, res.Kind, res.Name, res.Status, res.Msg)
			}
		}
		if !ok && !t.Failed() {
			t.Errorf("overlays/%s: kubeconform failed with every object valid", o)
		}
	}

	// Each case changes one object of the dev overlay (or prod's
	// ScaledObject) and names it after itself.
	prod := render(t, "prod")
	cases := []struct {
		name, kind string
		from       *rendered
		change     func(o map[string]any)
		want       string // in kubeconform's message
	}{
		{"unknown-field-in-deployment-spec", "Deployment", dev, func(o map[string]any) {
			obj(o, "spec")["replica"] = 2
		}, "'replica' not allowed"},
		{"misspelt-probe-field", "Deployment", dev, func(o map[string]any) {
			c := container(o)
			c["readinesProbe"] = c["readinessProbe"]
			delete(c, "readinessProbe")
		}, "'readinesProbe' not allowed"},
		{"string-replicas", "StatefulSet", dev, func(o map[string]any) {
			obj(o, "spec")["replicas"] = "three"
		}, "want integer"},
		{"env-without-name", "Deployment", dev, func(o map[string]any) {
			c := container(o)
			c["env"] = append(c["env"].([]any), map[string]any{"value": "x"})
		}, "missing property 'name'"},
		{"unknown-field-in-network-policy-spec", "NetworkPolicy", dev, func(o map[string]any) {
			obj(o, "spec")["ingres"] = []any{}
		}, "'ingres' not allowed"},
		{"unknown-field-in-scaledobject", "ScaledObject", prod, func(o map[string]any) {
			obj(o, "spec")["pollInterval"] = 5
		}, "'pollInterval' not allowed"},
		{"kind-without-schema", "Deployment", dev, func(o map[string]any) {
			o["apiVersion"] = "example.com/v1"
		}, "could not find schema"},
	}
	var manifests bytes.Buffer
	for _, c := range cases {
		o := firstOf(t, c.from, c.kind)
		c.change(o)
		obj(o, "metadata")["name"] = c.name
		b, err := yaml.Marshal(o)
		if err != nil {
			t.Fatal(err)
		}
		manifests.WriteString("---\n")
		manifests.Write(b)
	}
	results, ok := runKubeconform(t, dir, manifests.Bytes())
	if ok {
		t.Errorf("kubeconform passed every wrong object")
	}
	for _, c := range cases {
		found := false
		for _, res := range results {
			if res.Name != c.name {
				continue
			}
			found = true
			if res.Status == "statusValid" || res.Status == "statusSkipped" || !strings.Contains(res.Msg, c.want) {
				t.Errorf("%s: %s %q, want refused with %q", c.name, res.Status, res.Msg, c.want)
			}
		}
		if !found {
			t.Errorf("%s: kubeconform did not report it", c.name)
		}
	}
}

// firstOf is the first object of a kind in r, as a generic map.
func firstOf(t *testing.T, r *rendered, kind string) map[string]any {
	t.Helper()
	for _, doc := range bytes.Split(r.yaml, []byte("\n---\n")) {
		var o map[string]any
		if err := yaml.Unmarshal(doc, &o); err != nil {
			t.Fatal(err)
		}
		if o["kind"] == kind {
			return o
		}
	}
	t.Fatalf("no %s rendered", kind)
	return nil
}

func obj(o map[string]any, key string) map[string]any { return o[key].(map[string]any) }

func container(o map[string]any) map[string]any {
	pod := obj(obj(o, "spec"), "template")
	return obj(pod, "spec")["containers"].([]any)[0].(map[string]any)
}
