// Package k8s_test renders every overlay of deploy/k8s with the kustomize
// API, decodes each object strictly into the Kubernetes API types (unknown
// fields are errors) and cross-checks the objects against each other and
// against the binaries they run. docs/kubernetes.md lists what this cannot
// prove without a cluster.
package k8s_test

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"

	"github.com/jobwire/jobwire/deploy/k8s/internal/overlay"
)

// rendered is one overlay's objects, decoded.
type rendered struct {
	namespace    string
	services     []*corev1.Service
	configMaps   []*corev1.ConfigMap
	secrets      []*corev1.Secret
	deployments  []*appsv1.Deployment
	statefulSets []*appsv1.StatefulSet
	jobs         []*batchv1.Job
	ingresses    []*networkingv1.Ingress
	netpols      []*networkingv1.NetworkPolicy
	pdbs         []*policyv1.PodDisruptionBudget
	hpas         []*autoscalingv2.HorizontalPodAutoscaler
	all          []object
	yaml         []byte // every object, as kustomize build prints them
}

type object struct {
	kind, name string
	labels     map[string]string
}

// workload is a pod template with the name and kind that owns it.
type workload struct {
	kind, name string
	replicas   int32
	pod        *corev1.PodTemplateSpec
}

func (r *rendered) workloads() []workload {
	var ws []workload
	for _, d := range r.deployments {
		n := int32(1)
		if d.Spec.Replicas != nil {
			n = *d.Spec.Replicas
		}
		ws = append(ws, workload{"Deployment", d.Name, n, &d.Spec.Template})
	}
	for _, s := range r.statefulSets {
		ws = append(ws, workload{"StatefulSet", s.Name, *s.Spec.Replicas, &s.Spec.Template})
	}
	for _, j := range r.jobs {
		ws = append(ws, workload{"Job", j.Name, 1, &j.Spec.Template})
	}
	return ws
}

// render builds an overlay (internal/overlay: in memory, secrets.env made
// from the committed example) and decodes every object strictly.
func render(t *testing.T, name string) *rendered {
	t.Helper()
	resMap, err := overlay.Render(".", name)
	if err != nil {
		t.Fatal(err)
	}
	r := &rendered{}
	if r.yaml, err = resMap.AsYaml(); err != nil {
		t.Fatal(err)
	}
	for _, res := range resMap.Resources() {
		b, err := res.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		gvk := res.GetGvk()
		key := gvk.Group + "/" + gvk.Version + "/" + gvk.Kind
		var into any
		switch key {
		case "/v1/Service":
			into = appendNew(&r.services)
		case "/v1/ConfigMap":
			into = appendNew(&r.configMaps)
		case "/v1/Secret":
			into = appendNew(&r.secrets)
		case "apps/v1/Deployment":
			into = appendNew(&r.deployments)
		case "apps/v1/StatefulSet":
			into = appendNew(&r.statefulSets)
		case "batch/v1/Job":
			into = appendNew(&r.jobs)
		case "networking.k8s.io/v1/Ingress":
			into = appendNew(&r.ingresses)
		case "networking.k8s.io/v1/NetworkPolicy":
			into = appendNew(&r.netpols)
		case "policy/v1/PodDisruptionBudget":
			into = appendNew(&r.pdbs)
		case "autoscaling/v2/HorizontalPodAutoscaler":
			into = appendNew(&r.hpas)
		case "keda.sh/v1alpha1/ScaledObject":
			// KEDA's API types pin another k8s.io/api: deploy/k8s/keda
			// decodes it strictly and checks its triggers; kubeconform
			// checks it against KEDA's CRD schema (kubeconform_test.go).
			into = new(map[string]any)
		default:
			t.Fatalf("overlays/%s: %s %s: no type to check it against", name, key, res.GetName())
		}
		if err := yaml.UnmarshalStrict(b, into); err != nil {
			t.Errorf("overlays/%s: %s %s: strict decode: %v", name, gvk.Kind, res.GetName(), err)
		}
		if ns := res.GetNamespace(); r.namespace == "" {
			r.namespace = ns
		} else if ns != r.namespace {
			t.Errorf("overlays/%s: %s %s in namespace %q, others in %q", name, gvk.Kind, res.GetName(), ns, r.namespace)
		}
		r.all = append(r.all, object{gvk.Kind, res.GetName(), res.GetLabels()})
	}
	if r.namespace == "" {
		t.Fatalf("overlays/%s sets no namespace", name)
	}
	return r
}

func appendNew[T any](list *[]*T) *T {
	v := new(T)
	*list = append(*list, v)
	return v
}

func forEachOverlay(t *testing.T, check func(t *testing.T, overlay string, r *rendered)) {
	for _, o := range overlay.Names {
		t.Run(o, func(t *testing.T) { check(t, o, render(t, o)) })
	}
}

func TestRenderStrict(t *testing.T) {
	forEachOverlay(t, func(t *testing.T, overlay string, r *rendered) {
		if len(r.statefulSets) != 1 || len(r.jobs) != 1 || len(r.secrets) != 1 {
			t.Fatalf("want one NATS StatefulSet, one set-up Job, one Secret; got %d, %d, %d", len(r.statefulSets), len(r.jobs), len(r.secrets))
		}
		for _, o := range r.all {
			for _, l := range []string{"app.kubernetes.io/part-of", "app.kubernetes.io/managed-by", "app.kubernetes.io/instance"} {
				if o.labels[l] == "" {
					t.Errorf("%s %s: no label %s", o.kind, o.name, l)
				}
			}
		}
	})
}
