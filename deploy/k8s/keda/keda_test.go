// Package keda_test decodes the runners' ScaledObjects of every overlay
// of deploy/k8s strictly into KEDA's own API types
// (github.com/kedacore/keda/v2/apis/keda/v1alpha1, the version go.mod
// requires), runs the checks of KEDA's admission webhook that need no
// cluster, and cross-checks each ScaledObject with what it scales and
// reads: the runner Deployment, the NATS monitoring endpoint, jobwire's
// stream and consumer names (shared/jobs) and the metadata KEDA's NATS
// JetStream scaler reads. KEDA's module pins another k8s.io/api than
// kustomize's, so this is a module of its own; the overlays are rendered
// by deploy/k8s's cmd/render.
package keda_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	kedav1alpha1 "github.com/kedacore/keda/v2/apis/keda/v1alpha1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

const (
	k8sDir   = ".."       // deploy/k8s
	repoRoot = "../../.." // the jobwire module
)

var overlays = []string{"dev", "prod"}

// objects are the kinds of one overlay this test looks at. Only the
// ScaledObjects are decoded strictly here; deploy/k8s decodes the rest
// strictly into the k8s.io/api version kustomize's side uses.
type objects struct {
	scaledObjects []*kedav1alpha1.ScaledObject
	deployments   []*appsv1.Deployment
	statefulSets  []*appsv1.StatefulSet
	services      []*corev1.Service
	hpas          []*autoscalingv2.HorizontalPodAutoscaler
}

func render(t *testing.T, overlay string) *objects {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "run", "./cmd/render", overlay)
	cmd.Dir = k8sDir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go run ./cmd/render %s: %v\n%s", overlay, err, stderr.String())
	}
	o := &objects{}
	docs := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(out)))
	for {
		doc, err := docs.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &tm); err != nil {
			t.Fatal(err)
		}
		switch tm.APIVersion + "/" + tm.Kind {
		case "keda.sh/v1alpha1/ScaledObject":
			so := new(kedav1alpha1.ScaledObject)
			if err := yaml.UnmarshalStrict(doc, so); err != nil {
				t.Errorf("overlays/%s: ScaledObject: strict decode into KEDA's types: %v", overlay, err)
			}
			o.scaledObjects = append(o.scaledObjects, so)
		case "apps/v1/Deployment":
			o.deployments = append(o.deployments, decode[appsv1.Deployment](t, doc))
		case "apps/v1/StatefulSet":
			o.statefulSets = append(o.statefulSets, decode[appsv1.StatefulSet](t, doc))
		case "v1/Service":
			o.services = append(o.services, decode[corev1.Service](t, doc))
		case "autoscaling/v2/HorizontalPodAutoscaler":
			o.hpas = append(o.hpas, decode[autoscalingv2.HorizontalPodAutoscaler](t, doc))
		}
	}
	return o
}

func decode[T any](t *testing.T, doc []byte) *T {
	v := new(T)
	if err := yaml.Unmarshal(doc, v); err != nil {
		t.Fatal(err)
	}
	return v
}

// TestStrictDecodeRefusesUnknownFields: the decode above would catch a
// misspelt field of the ScaledObject (what the local mirror it replaced
// did, and what KEDA's CRD schema does in the API server).
func TestStrictDecodeRefusesUnknownFields(t *testing.T) {
	for _, doc := range []string{
		"apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata: {name: x}\nspec: {scaleTargetRef: {name: x}, pollInterval: 5, triggers: []}\n",
		"apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata: {name: x}\nspec: {scaleTargetRef: {name: x}, triggers: [{type: nats-jetstream, metadta: {}}]}\n",
	} {
		if err := yaml.UnmarshalStrict([]byte(doc), new(kedav1alpha1.ScaledObject)); err == nil || !strings.Contains(err.Error(), "unknown field") {
			t.Errorf("strict decode of %q: %v, want an unknown field", doc, err)
		}
	}
}

func TestScaledObjects(t *testing.T) {
	scaler := natsJetStreamMetadata(t)
	topo := jobwireTopology(t)
	for _, overlay := range overlays {
		t.Run(overlay, func(t *testing.T) {
			o := render(t, overlay)
			if overlay == "prod" && len(o.scaledObjects) == 0 {
				t.Fatal("prod: no ScaledObject scales the runners")
			}
			scaledBy := map[string]string{} // Deployment -> ScaledObject
			for _, so := range o.scaledObjects {
				what := "ScaledObject " + so.Name
				// What KEDA's admission webhook checks without a cluster.
				for _, err := range []error{kedav1alpha1.CheckReplicaCountBoundsAreValid(so), kedav1alpha1.CheckFallbackValid(so), kedav1alpha1.ValidateTriggers(so.Spec.Triggers)} {
					if err != nil {
						t.Errorf("%s: %v", what, err)
					}
				}
				if f := so.Spec.Fallback; f != nil && (f.Replicas < *so.GetHPAMinReplicas() || f.Replicas > so.GetHPAMaxReplicas()) {
					t.Errorf("%s: fallback replicas %d outside %d..%d", what, f.Replicas, *so.GetHPAMinReplicas(), so.GetHPAMaxReplicas())
				}
				d := checkTarget(t, o, so)
				if d == nil {
					continue
				}
				if other, ok := scaledBy[d.Name]; ok {
					t.Errorf("%s and %s both scale Deployment %s", what, other, d.Name)
				}
				scaledBy[d.Name] = so.Name
				for _, h := range o.hpas {
					if h.Spec.ScaleTargetRef.Kind == "Deployment" && h.Spec.ScaleTargetRef.Name == d.Name {
						t.Errorf("%s: HorizontalPodAutoscaler %s scales Deployment %s too (KEDA makes its own)", what, h.Name, d.Name)
					}
				}
				checkTriggers(t, o, so, d, scaler, topo)
			}
			if overlay == "prod" {
				for _, d := range runnerDeployments(o) {
					if _, ok := scaledBy[d.Name]; !ok {
						t.Errorf("prod: runner Deployment %s has no ScaledObject", d.Name)
					}
				}
			}
		})
	}
}

func runnerDeployments(o *objects) []*appsv1.Deployment {
	var ds []*appsv1.Deployment
	for _, d := range o.deployments {
		if d.Spec.Template.Labels["app.kubernetes.io/component"] == "runner" {
			ds = append(ds, d)
		}
	}
	return ds
}

// checkTarget: the ScaledObject scales a runner Deployment of the same
// pool, and that Deployment leaves the replica count to it.
func checkTarget(t *testing.T, o *objects, so *kedav1alpha1.ScaledObject) *appsv1.Deployment {
	ref := so.Spec.ScaleTargetRef
	if ref == nil {
		t.Errorf("ScaledObject %s: no scaleTargetRef", so.Name)
		return nil
	}
	if ref.APIVersion != "" && ref.APIVersion != "apps/v1" || ref.Kind != "" && ref.Kind != "Deployment" {
		t.Errorf("ScaledObject %s: scaleTargetRef %s %s, want apps/v1 Deployment", so.Name, ref.APIVersion, ref.Kind)
		return nil
	}
	for _, d := range runnerDeployments(o) {
		if d.Name != ref.Name {
			continue
		}
		if got, want := so.Labels["jobwire.io/pool"], d.Labels["jobwire.io/pool"]; got != want {
			t.Errorf("ScaledObject %s: pool %q scales Deployment %s of pool %q", so.Name, got, d.Name, want)
		}
		if d.Spec.Replicas != nil {
			t.Errorf("Deployment %s sets replicas %d that every apply would reset under KEDA", d.Name, *d.Spec.Replicas)
		}
		return d
	}
	t.Errorf("ScaledObject %s: scaleTargetRef %s is no runner Deployment of this overlay", so.Name, ref.Name)
	return nil
}

// topology is what the ScaledObject must name of jobwire's NATS layout.
type topology struct {
	queueStream    string          // shared/jobs.Stream
	consumerPrefix string          // shared/jobs.ConsumerName(typ) = prefix + typ
	builtinTypes   []string        // services/runner/jobtypes
	accounts       map[string]bool // accounts of deploy/k8s/base/nats/nats.conf
}

func checkTriggers(t *testing.T, o *objects, so *kedav1alpha1.ScaledObject, d *appsv1.Deployment, scaler map[string]scalerField, topo topology) {
	what := "ScaledObject " + so.Name
	runner := d.Spec.Template.Spec.Containers[0]
	env := map[string]string{}
	for _, e := range runner.Env {
		env[e.Name] = e.Value
	}
	served := topo.builtinTypes
	if v := env["JOB_TYPES"]; v != "" {
		served = strings.Split(v, ",")
	}
	endpoint := monitoringEndpoint(t, o, so.Namespace)
	var triggered []string
	for _, tr := range so.Spec.Triggers {
		if tr.Type != "nats-jetstream" {
			t.Errorf("%s: trigger type %q; the runners scale on the work queue (nats-jetstream)", what, tr.Type)
			continue
		}
		md := tr.Metadata
		// Every key is one KEDA's scaler reads, with a value of its type,
		// and every key it requires is set.
		for k, v := range md {
			f, ok := scaler[k]
			if !ok {
				t.Errorf("%s: metadata %s is not read by KEDA's NATS JetStream scaler (it reads %v)", what, k, slices.Sorted(maps.Keys(scaler)))
				continue
			}
			if err := f.check(v); err != nil {
				t.Errorf("%s: metadata %s=%q: %v", what, k, v, err)
			}
		}
		for k, f := range scaler {
			if f.required && md[k] == "" && tr.AuthenticationRef == nil {
				t.Errorf("%s: metadata %s is required by KEDA's scaler", what, k)
			}
		}
		if md["stream"] != topo.queueStream {
			t.Errorf("%s: stream %q; the work queue is %s (shared/jobs.Stream)", what, md["stream"], topo.queueStream)
		}
		typ, ok := strings.CutPrefix(md["consumer"], topo.consumerPrefix)
		base, _ := strings.CutSuffix(typ, "_high") // shared/jobs.PriorityConsumerName
		base, _ = strings.CutSuffix(base, "_low")
		if !ok || !slices.Contains(served, base) {
			t.Errorf("%s: consumer %q is not %s<type>[_high|_low] of a type Deployment %s serves %v (shared/jobs.PriorityConsumerName)", what, md["consumer"], topo.consumerPrefix, d.Name, served)
		}
		triggered = append(triggered, typ)
		if !topo.accounts[md["account"]] {
			t.Errorf("%s: account %q is not an account of nats.conf", what, md["account"])
		}
		if md["natsServerMonitoringEndpoint"] != endpoint {
			t.Errorf("%s: natsServerMonitoringEndpoint %q, want %q (the NATS StatefulSet's headless Service)", what, md["natsServerMonitoringEndpoint"], endpoint)
		}
		if md["useHttps"] == "true" {
			t.Errorf("%s: NATS's monitoring port serves plain HTTP (nats.conf)", what)
		}
		lag := md["lagThreshold"]
		if lag == "" {
			lag = scaler["lagThreshold"].def
		}
		if atoi(lag, 0) < atoi(env["RUNNER_CONCURRENCY"], 4) {
			t.Errorf("%s: lagThreshold %s below RUNNER_CONCURRENCY %s: a runner could take every pending job and still more runners would start", what, lag, env["RUNNER_CONCURRENCY"])
		}
	}
	slices.Sort(triggered)
	var want []string
	for _, typ := range served {
		want = append(want, typ, typ+"_high", typ+"_low")
	}
	slices.Sort(want)
	if !slices.Equal(triggered, want) {
		t.Errorf("%s: triggers on the consumers of %v; Deployment %s serves types %v: one trigger per type and priority (%v)", what, triggered, d.Name, served, want)
	}
}

func atoi(s string, def int) int {
	if n, err := strconv.Atoi(s); err == nil {
		return n
	}
	return def
}

// monitoringEndpoint is host:port of the NATS nodes' monitoring port
// through the StatefulSet's headless Service: KEDA asks it for /jsz, then
// the consumer's leader by <server name>.<that host>.
func monitoringEndpoint(t *testing.T, o *objects, namespace string) string {
	if len(o.statefulSets) != 1 {
		t.Fatalf("want one NATS StatefulSet, got %d", len(o.statefulSets))
	}
	sts := o.statefulSets[0]
	var monitor *corev1.ContainerPort
	for i, p := range sts.Spec.Template.Spec.Containers[0].Ports {
		if p.ContainerPort == 8222 {
			monitor = &sts.Spec.Template.Spec.Containers[0].Ports[i]
		}
	}
	if monitor == nil {
		t.Fatalf("StatefulSet %s declares no monitoring port 8222", sts.Name)
	}
	for _, svc := range o.services {
		if svc.Name != sts.Spec.ServiceName {
			continue
		}
		for _, p := range svc.Spec.Ports {
			if p.TargetPort.String() == monitor.Name || p.TargetPort.IntValue() == 8222 {
				return fmt.Sprintf("%s.%s.svc.cluster.local:%d", svc.Name, namespace, p.Port)
			}
		}
		t.Fatalf("Service %s has no port to the monitoring port", svc.Name)
	}
	t.Fatalf("no Service %s (the StatefulSet's serviceName)", sts.Spec.ServiceName)
	return ""
}

// scalerField is one metadata key of KEDA's NATS JetStream scaler.
type scalerField struct {
	typ      string // Go type of the field: string, int64, bool
	required bool
	def      string // the value when unset
}

func (f scalerField) check(v string) error {
	var err error
	switch f.typ {
	case "int64":
		_, err = strconv.ParseInt(v, 10, 64)
	case "bool":
		_, err = strconv.ParseBool(v)
	}
	return err
}

// natsJetStreamMetadata reads the metadata keys of KEDA's NATS JetStream
// scaler from its source in the KEDA module go.mod requires (the
// `keda:"name=…"` tags of natsJetStreamMetadata): importing the scalers
// package would build every scaler's cloud SDK.
func natsJetStreamMetadata(t *testing.T) map[string]scalerField {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/kedacore/keda/v2").Output()
	if err != nil {
		t.Fatalf("go list -m github.com/kedacore/keda/v2: %v", err)
	}
	file := filepath.Join(strings.TrimSpace(string(out)), "pkg/scalers/nats_jetstream_scaler.go")
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	fields := map[string]scalerField{}
	ast.Inspect(f, func(n ast.Node) bool {
		ts, ok := n.(*ast.TypeSpec)
		if !ok || ts.Name.Name != "natsJetStreamMetadata" {
			return true
		}
		for _, fd := range ts.Type.(*ast.StructType).Fields.List {
			if fd.Tag == nil {
				continue
			}
			tag, _ := strconv.Unquote(fd.Tag.Value)
			opts := reflect.StructTag(tag).Get("keda")
			var name, def string
			required := true
			for _, opt := range strings.Split(opts, ",") {
				k, v, _ := strings.Cut(strings.TrimSpace(opt), "=")
				switch k {
				case "name":
					name = v
				case "optional":
					required = false
				case "default":
					required, def = false, v
				}
			}
			if name != "" {
				fields[name] = scalerField{typ: fmt.Sprint(fd.Type), required: required, def: def}
			}
		}
		return false
	})
	if len(fields) == 0 {
		t.Fatalf("%s: no natsJetStreamMetadata with keda tags", file)
	}
	return fields
}

// jobwireTopology reads the names the ScaledObject must use from
// jobwire's own source, so a renamed stream or consumer fails here.
func jobwireTopology(t *testing.T) topology {
	var topo topology
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, filepath.Join(repoRoot, "shared/jobs/subjects.go"), nil, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.ValueSpec:
			for i, id := range n.Names {
				if id.Name == "Stream" && i < len(n.Values) {
					topo.queueStream = stringLit(n.Values[i])
				}
			}
		case *ast.FuncDecl:
			// func ConsumerName(typ string) string { return "runners_" + typ }
			if n.Name.Name == "ConsumerName" && len(n.Body.List) == 1 {
				if ret, ok := n.Body.List[0].(*ast.ReturnStmt); ok && len(ret.Results) == 1 {
					if be, ok := ret.Results[0].(*ast.BinaryExpr); ok && be.Op == token.ADD {
						topo.consumerPrefix = stringLit(be.X)
					}
				}
			}
		}
		return true
	})
	if topo.queueStream == "" || topo.consumerPrefix == "" {
		t.Fatalf("shared/jobs/subjects.go: no Stream constant (%q) or ConsumerName of the form prefix + typ (%q)", topo.queueStream, topo.consumerPrefix)
	}
	pkgs, err := filepath.Glob(filepath.Join(repoRoot, "services/runner/jobtypes/*.go"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pkgs {
		if strings.HasSuffix(p, "_test.go") {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range regexp.MustCompile(`(?m)^\s+Name:\s+"([a-z0-9_.-]+)",`).FindAllSubmatch(b, -1) {
			topo.builtinTypes = append(topo.builtinTypes, string(m[1]))
		}
	}
	if len(topo.builtinTypes) == 0 {
		t.Fatal("no built-in job types in services/runner/jobtypes")
	}
	conf, err := os.ReadFile(filepath.Join(k8sDir, "base/nats/nats.conf"))
	if err != nil {
		t.Fatal(err)
	}
	topo.accounts = map[string]bool{}
	if m := regexp.MustCompile(`(?s)accounts\s*\{(.*)`).FindSubmatch(conf); m != nil {
		for _, a := range regexp.MustCompile(`(?m)^\s{2}([A-Z][A-Z0-9_]*)\s*\{`).FindAllSubmatch(m[1], -1) {
			topo.accounts[string(a[1])] = true
		}
	}
	if len(topo.accounts) == 0 {
		t.Fatal("base/nats/nats.conf: no accounts block")
	}
	return topo
}

func stringLit(e ast.Expr) string {
	if bl, ok := e.(*ast.BasicLit); ok && bl.Kind == token.STRING {
		s, _ := strconv.Unquote(bl.Value)
		return s
	}
	return ""
}
