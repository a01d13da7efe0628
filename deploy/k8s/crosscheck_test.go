package k8s_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

const repoRoot = "../.."

// binaries: which command each image runs, where its HTTP routes are
// declared, and the paths it serves there.
var binaries = map[string]struct {
	pkg    string // go run target printing --help; "" for nats-server
	routes string // a file that must hold every probed path, quoted
}{
	"jobwire-gateway": {"./services/gateway", "services/gateway/httpapi/routes.go"},
	"jobwire-runner":  {"./services/runner", "services/runner"},
	"jobwire-setup":   {"./cmd/jobwire-setup", ""},
	"jobwire-nats":    {"", ""},
}

// runtimeEnv are read by the Go runtime of every binary.
var runtimeEnv = []string{"GOMEMLIMIT"}

var helpCache sync.Map // pkg -> []string

// helpEnv returns the env names a command's --help lists ("(env NAME)").
func helpEnv(t *testing.T, pkg string) []string {
	t.Helper()
	if v, ok := helpCache.Load(pkg); ok {
		return v.([]string)
	}
	cmd := exec.Command("go", "run", pkg, "--help")
	cmd.Dir = repoRoot
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	_ = cmd.Run() // --help exits non-zero with the flag package
	var names []string
	for _, m := range regexp.MustCompile(`\(env ([A-Z0-9_]+)\)`).FindAllStringSubmatch(out.String(), -1) {
		names = append(names, m[1])
	}
	if len(names) == 0 {
		t.Fatalf("go run %s --help listed no settings:\n%s", pkg, out.String())
	}
	helpCache.Store(pkg, names)
	return names
}

func imageOf(c corev1.Container) string {
	name := c.Image[strings.LastIndex(c.Image, "/")+1:]
	if i := strings.IndexAny(name, ":@"); i >= 0 {
		name = name[:i]
	}
	return name
}

// natsConfigVars are the $VARIABLES the NATS config files read.
func natsConfigVars(t *testing.T) []string {
	var vars []string
	for _, f := range []string{"base/nats/nats.conf", "base/nats/cluster.conf"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "#") {
				continue
			}
			for _, m := range regexp.MustCompile(`:\s*\$([A-Z][A-Z0-9_]+)\s*$`).FindAllStringSubmatch(line, -1) {
				if !slices.Contains(vars, m[1]) {
					vars = append(vars, m[1])
				}
			}
		}
	}
	return vars
}

func envMap(c corev1.Container) map[string]corev1.EnvVar {
	m := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		m[e.Name] = e
	}
	return m
}

// envValue resolves a literal or a ConfigMap key.
func (r *rendered) envValue(t *testing.T, e corev1.EnvVar) string {
	if e.ValueFrom == nil {
		return e.Value
	}
	if ref := e.ValueFrom.ConfigMapKeyRef; ref != nil {
		for _, cm := range r.configMaps {
			if cm.Name == ref.Name {
				if v, ok := cm.Data[ref.Key]; ok {
					return v
				}
			}
		}
		t.Errorf("env %s: ConfigMap %s has no key %s", e.Name, ref.Name, ref.Key)
	}
	return ""
}

func TestNATSConfigCopies(t *testing.T) {
	for _, f := range []string{"nats.conf", "cluster.conf"} {
		want, err := os.ReadFile(filepath.Join(repoRoot, "deploy/nats", f))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join("base/nats", f))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("base/nats/%s differs from deploy/nats/%s: copy it again", f, f)
		}
	}
	b, err := os.ReadFile(".gitignore")
	if err != nil || !strings.Contains(string(b), "/overlays/*/secrets.env") {
		t.Errorf(".gitignore must keep overlays/*/secrets.env out of git (%v)", err)
	}
}

func TestSelectorsPortsProbes(t *testing.T) {
	forEachOverlay(t, func(t *testing.T, overlay string, r *rendered) {
		ws := r.workloads()
		podsOf := func(sel labels.Selector) (out []workload) {
			for _, w := range ws {
				if sel.Matches(labels.Set(w.pod.Labels)) {
					out = append(out, w)
				}
			}
			return out
		}
		mustSelector := func(ls *metav1.LabelSelector, what string) labels.Selector {
			sel, err := metav1.LabelSelectorAsSelector(ls)
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			return sel
		}
		// Workload selectors match their own pods and no other workload's.
		for _, d := range r.deployments {
			checkOwnSelector(t, "Deployment "+d.Name, d.Spec.Selector, d.Spec.Template.Labels, podsOf)
		}
		for _, s := range r.statefulSets {
			checkOwnSelector(t, "StatefulSet "+s.Name, s.Spec.Selector, s.Spec.Template.Labels, podsOf)
		}
		// Services select one workload, and each target port is a named
		// port of its containers.
		for _, svc := range r.services {
			pods := podsOf(labels.SelectorFromSet(svc.Spec.Selector))
			if len(pods) != 1 {
				t.Errorf("Service %s selects %d workloads, want 1", svc.Name, len(pods))
				continue
			}
			for _, p := range svc.Spec.Ports {
				if findPort(pods[0].pod, p.TargetPort.String()) == nil {
					t.Errorf("Service %s port %s: target %s is no container port of %s", svc.Name, p.Name, p.TargetPort.String(), pods[0].name)
				}
			}
		}
		for _, pdb := range r.pdbs {
			if n := len(podsOf(mustSelector(pdb.Spec.Selector, "PDB "+pdb.Name))); n != 1 {
				t.Errorf("PodDisruptionBudget %s selects %d workloads, want 1", pdb.Name, n)
			}
		}
		for _, np := range r.netpols {
			sel := mustSelector(&np.Spec.PodSelector, "NetworkPolicy "+np.Name)
			if len(podsOf(sel)) == 0 {
				t.Errorf("NetworkPolicy %s selects no pod", np.Name)
			}
		}
		for _, ing := range r.ingresses {
			for _, rule := range ing.Spec.Rules {
				for _, p := range rule.HTTP.Paths {
					b := p.Backend.Service
					if svc := findService(r, b.Name); svc == nil {
						t.Errorf("Ingress %s: no Service %s", ing.Name, b.Name)
					} else if !slices.ContainsFunc(svc.Spec.Ports, func(sp corev1.ServicePort) bool {
						return sp.Name == b.Port.Name && b.Port.Name != "" || sp.Port == b.Port.Number && b.Port.Number != 0
					}) {
						t.Errorf("Ingress %s: Service %s has no port %v", ing.Name, b.Name, b.Port)
					}
				}
			}
		}
		for _, h := range r.hpas {
			if findDeployment(r, h.Spec.ScaleTargetRef.Name) == nil {
				t.Errorf("HPA %s: no Deployment %s", h.Name, h.Spec.ScaleTargetRef.Name)
			}
		}
		// Probes: HTTP paths the binary serves on a port it declares; exec
		// probes run jobwire-healthcheck against the pod's own loopback.
		for _, w := range ws {
			for _, c := range w.pod.Spec.Containers {
				for kind, p := range map[string]*corev1.Probe{"startup": c.StartupProbe, "liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
					if p == nil {
						if w.kind != "Job" {
							t.Errorf("%s %s: no %s probe", w.kind, w.name, kind)
						}
						continue
					}
					checkProbe(t, w, c, kind, p)
				}
			}
		}
	})
}

func checkOwnSelector(t *testing.T, what string, ls *metav1.LabelSelector, own map[string]string, podsOf func(labels.Selector) []workload) {
	sel, err := metav1.LabelSelectorAsSelector(ls)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if !sel.Matches(labels.Set(own)) {
		t.Errorf("%s: selector %s does not match its pod labels %v", what, sel, own)
	}
	if n := len(podsOf(sel)); n != 1 {
		t.Errorf("%s: selector %s matches %d workloads' pods", what, sel, n)
	}
}

func findPort(pod *corev1.PodTemplateSpec, nameOrNumber string) *corev1.ContainerPort {
	for _, c := range pod.Spec.Containers {
		for i, p := range c.Ports {
			if p.Name == nameOrNumber || strconv.Itoa(int(p.ContainerPort)) == nameOrNumber {
				return &c.Ports[i]
			}
		}
	}
	return nil
}

func findService(r *rendered, name string) *corev1.Service {
	for _, s := range r.services {
		if s.Name == name {
			return s
		}
	}
	return nil
}

func findDeployment(r *rendered, name string) *workload {
	for _, w := range r.workloads() {
		if w.kind == "Deployment" && w.name == name {
			return &w
		}
	}
	return nil
}

func checkProbe(t *testing.T, w workload, c corev1.Container, kind string, p *corev1.Probe) {
	img := imageOf(c)
	var path string
	switch {
	case p.HTTPGet != nil:
		if findPort(w.pod, p.HTTPGet.Port.String()) == nil {
			t.Errorf("%s %s %s probe: port %s is not a container port", w.kind, w.name, kind, p.HTTPGet.Port.String())
		}
		path = p.HTTPGet.Path
	case p.Exec != nil:
		cmd := p.Exec.Command
		if len(cmd) != 2 || cmd[0] != "jobwire-healthcheck" || !strings.HasPrefix(cmd[1], "http://127.0.0.1:") {
			t.Errorf("%s %s %s probe: want jobwire-healthcheck http://127.0.0.1:PORT/PATH, got %q", w.kind, w.name, kind, cmd)
			return
		}
		hostPath := strings.TrimPrefix(cmd[1], "http://127.0.0.1:")
		port, rest, _ := strings.Cut(hostPath, "/")
		if img == "jobwire-nats" && port != "8222" {
			t.Errorf("%s %s %s probe: nats-server's monitoring port is 8222 (nats.conf), not %s", w.kind, w.name, kind, port)
		}
		path = "/" + rest
	default:
		t.Errorf("%s %s %s probe: neither httpGet nor exec", w.kind, w.name, kind)
		return
	}
	path, _, _ = strings.Cut(path, "?")
	if img == "jobwire-nats" {
		if path != "/healthz" {
			t.Errorf("%s %s %s probe: nats-server health is /healthz, not %s", w.kind, w.name, kind, path)
		}
		return
	}
	if src := grepDir(t, binaries[img].routes); !strings.Contains(src, strconv.Quote(path)) && !strings.Contains(src, strconv.Quote("GET "+path)) {
		t.Errorf("%s %s %s probe: %s does not serve %s", w.kind, w.name, kind, img, path)
	}
}

// grepDir returns the non-test Go source of a file or folder (recursively).
func grepDir(t *testing.T, rel string) string {
	var b strings.Builder
	err := filepath.Walk(filepath.Join(repoRoot, rel), func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return err
		}
		s, err := os.ReadFile(p)
		b.Write(s)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestEnvAndSecrets(t *testing.T) {
	cfgVars := natsConfigVars(t)
	forEachOverlay(t, func(t *testing.T, overlay string, r *rendered) {
		secretKeys := map[string]bool{}
		for k := range r.secrets[0].Data {
			secretKeys[k] = false
		}
		useKey := func(what, secret, key string) {
			if secret != r.secrets[0].Name {
				t.Errorf("%s: Secret %s is not generated (the generated one is %s)", what, secret, r.secrets[0].Name)
				return
			}
			if _, ok := secretKeys[key]; !ok {
				t.Errorf("%s: Secret key %s is not in secrets.env.example", what, key)
			}
			secretKeys[key] = true
		}
		replicas := map[string]string{}
		for _, w := range r.workloads() {
			for _, v := range w.pod.Spec.Volumes {
				if v.Secret != nil {
					if len(v.Secret.Items) == 0 {
						t.Errorf("%s %s: secret volume %s mounts every key; list the ones it needs", w.kind, w.name, v.Name)
					}
					for _, it := range v.Secret.Items {
						useKey(w.name+" volume "+v.Name, v.Secret.SecretName, it.Key)
					}
				}
			}
			for _, c := range w.pod.Spec.Containers {
				img := imageOf(c)
				what := fmt.Sprintf("%s %s container %s", w.kind, w.name, c.Name)
				if len(c.EnvFrom) > 0 {
					t.Errorf("%s: envFrom hides which settings are set; use env", what)
				}
				env := envMap(c)
				for _, e := range c.Env {
					if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
						useKey(what+" env "+e.Name, e.ValueFrom.SecretKeyRef.Name, e.ValueFrom.SecretKeyRef.Key)
					}
				}
				var known []string
				if pkg := binaries[img].pkg; pkg != "" {
					known = helpEnv(t, pkg)
				} else if img == "jobwire-nats" {
					known = append(cfgVars, "POD_NAME") // POD_NAME: $(POD_NAME) in args
					for _, v := range cfgVars {
						if _, ok := env[v]; !ok && (v != "JOBWIRE_CLUSTER_PASSWORD" || slices.Contains(c.Args, "/etc/nats/cluster.conf")) {
							t.Errorf("%s: the NATS config reads $%s, which is not set", what, v)
						}
					}
				} else {
					t.Fatalf("%s: unknown image %s", what, c.Image)
				}
				for _, e := range c.Env {
					if slices.Contains(known, e.Name) || slices.Contains(runtimeEnv, e.Name) {
						continue
					}
					t.Errorf("%s: %s sets env %s, which it does not read", what, img, e.Name)
				}
				if img == "jobwire-nats" {
					continue
				}
				// Every jobwire service: a NATS URL, its own user with its
				// password from a file, its own inbox prefix, the shared
				// replica count.
				for _, req := range []string{"NATS_URL", "NATS_USER", "NATS_PASSWORD_FILE", "NATS_INBOX_PREFIX", "JETSTREAM_REPLICAS"} {
					if _, ok := env[req]; !ok {
						t.Errorf("%s: %s is required", what, req)
					}
				}
				user := env["NATS_USER"].Value
				if got := env["NATS_INBOX_PREFIX"].Value; got != "_INBOX_"+user {
					t.Errorf("%s: NATS_INBOX_PREFIX %q, nats.conf gives user %s _INBOX_%s", what, got, user, user)
				}
				checkPasswordFile(t, what, w.pod, c, env["NATS_PASSWORD_FILE"].Value, "JOBWIRE_"+strings.ToUpper(user)+"_PASSWORD")
				if img != "jobwire-setup" && env["TOPOLOGY"].Value != "check" {
					t.Errorf("%s: TOPOLOGY must be check (the set-up Job creates the topology)", what)
				}
				if img == "jobwire-gateway" {
					checkPasswordFile(t, what, w.pod, c, env["SESSION_SECRET_FILE"].Value, "SESSION_SECRET")
				}
				replicas[what] = r.envValue(t, env["JETSTREAM_REPLICAS"])
			}
		}
		natsReplicas := strconv.Itoa(int(*r.statefulSets[0].Spec.Replicas))
		for what, v := range replicas {
			if v != natsReplicas {
				t.Errorf("%s: JETSTREAM_REPLICAS=%s on %s NATS nodes", what, v, natsReplicas)
			}
		}
		for k, used := range secretKeys {
			if !used {
				t.Errorf("Secret key %s is generated but nothing uses it", k)
			}
		}
	})
}

// checkPasswordFile: file is where a secret volume puts key.
func checkPasswordFile(t *testing.T, what string, pod *corev1.PodTemplateSpec, c corev1.Container, file, key string) {
	for _, m := range c.VolumeMounts {
		for _, v := range pod.Spec.Volumes {
			if v.Name != m.Name || v.Secret == nil {
				continue
			}
			for _, it := range v.Secret.Items {
				if filepath.Join(m.MountPath, it.Path) == file && it.Key == key {
					return
				}
			}
		}
	}
	t.Errorf("%s: %q is not a mounted file of Secret key %s", what, file, key)
}

func TestShutdownTimings(t *testing.T) {
	forEachOverlay(t, func(t *testing.T, overlay string, r *rendered) {
		for _, d := range r.deployments {
			spec := d.Spec.Template.Spec
			grace := time.Duration(*spec.TerminationGracePeriodSeconds) * time.Second
			c := spec.Containers[0]
			switch imageOf(c) {
			case "jobwire-gateway":
				// preStop sleep, then /readyz fails and HTTP shuts down within
				// 10 s (services/gateway/run.go), then NATS drains.
				if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Sleep == nil {
					t.Fatalf("%s: want a preStop sleep while the endpoints drop the pod", d.Name)
				}
				pre := time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
				if pre < 5*time.Second || grace < pre+10*time.Second+5*time.Second {
					t.Errorf("%s: preStop %v and grace %v; want preStop ≥ 5s and grace ≥ preStop + 10s HTTP shutdown + 5s", d.Name, pre, grace)
				}
				if ru := d.Spec.Strategy.RollingUpdate; ru == nil || ru.MaxUnavailable == nil || ru.MaxUnavailable.IntValue() != 0 {
					t.Errorf("%s: a rolling update must not take a gateway away before its successor is ready (maxUnavailable 0)", d.Name)
				}
			case "jobwire-runner":
				sg, err := time.ParseDuration(envMap(c)["SHUTDOWN_GRACE"].Value)
				if err != nil {
					t.Fatalf("%s: SHUTDOWN_GRACE: %v", d.Name, err)
				}
				if grace < sg+10*time.Second {
					t.Errorf("%s: terminationGracePeriodSeconds %v must exceed SHUTDOWN_GRACE %v by 10s (hand-back, drain)", d.Name, grace, sg)
				}
			}
		}
	})
}

func TestPodSecurity(t *testing.T) {
	forEachOverlay(t, func(t *testing.T, overlay string, r *rendered) {
		for _, w := range r.workloads() {
			ps := w.pod.Spec.SecurityContext
			what := w.kind + " " + w.name
			if ps == nil || ps.RunAsNonRoot == nil || !*ps.RunAsNonRoot || ps.RunAsUser == nil || *ps.RunAsUser != 65532 ||
				ps.SeccompProfile == nil || ps.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
				t.Errorf("%s: want runAsNonRoot, runAsUser 65532 and seccomp RuntimeDefault", what)
			}
			if w.pod.Spec.AutomountServiceAccountToken == nil || *w.pod.Spec.AutomountServiceAccountToken {
				t.Errorf("%s: no pod needs the API: automountServiceAccountToken false", what)
			}
			for _, l := range []string{"app.kubernetes.io/name", "app.kubernetes.io/component"} {
				if w.pod.Labels[l] == "" {
					t.Errorf("%s: pod label %s missing", what, l)
				}
			}
			for _, c := range w.pod.Spec.Containers {
				sc := c.SecurityContext
				if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
					sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
					sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0 {
					t.Errorf("%s container %s: want readOnlyRootFilesystem, no privilege escalation, capabilities drop ALL", what, c.Name)
				}
				if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
					t.Errorf("%s container %s: want cpu and memory requests and a memory limit", what, c.Name)
				}
			}
		}
	})
}

// TestMetricsScrape: gateways and runners carry Prometheus's scrape
// annotations, and they name the container port "metrics" that
// METRICS_ADDR listens on and a path the binaries serve.
func TestMetricsScrape(t *testing.T) {
	served := strings.Contains(grepDir(t, "."), `"/metrics"`)
	forEachOverlay(t, func(t *testing.T, overlay string, r *rendered) {
		for _, w := range r.workloads() {
			c := w.pod.Spec.Containers[0]
			img := imageOf(c)
			a := w.pod.Annotations
			what := w.kind + " " + w.name
			if img != "jobwire-gateway" && img != "jobwire-runner" {
				if a["prometheus.io/scrape"] != "" {
					t.Errorf("%s: scrape annotations, but %s serves no /metrics", what, img)
				}
				continue
			}
			if a["prometheus.io/scrape"] != "true" || a["prometheus.io/path"] != "/metrics" {
				t.Errorf("%s: want prometheus.io/scrape \"true\" and prometheus.io/path /metrics, got %v", what, a)
			}
			p := findPort(w.pod, "metrics")
			if p == nil || strconv.Itoa(int(p.ContainerPort)) != a["prometheus.io/port"] {
				t.Errorf("%s: prometheus.io/port %q is not the container port named metrics (%v)", what, a["prometheus.io/port"], p)
			}
			if got, want := envMap(c)["METRICS_ADDR"].Value, "0.0.0.0:"+a["prometheus.io/port"]; got != want {
				t.Errorf("%s: METRICS_ADDR %q, want %q (all interfaces, the annotated port)", what, got, want)
			}
			if !served {
				t.Errorf("%s: nothing in jobwire's source serves /metrics", what)
			}
		}
	})
}
