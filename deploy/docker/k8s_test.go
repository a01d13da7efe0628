//go:build dockertest

package docker

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestK8sPodSpecsOnDocker runs the containers of deploy/k8s's dev overlay,
// as kustomize renders them, on the Docker engine: the NATS StatefulSet's
// pod, the set-up Job, then the gateway and runner Deployments, each with
// its image (the ones TestClusterSurvivesFaults builds), args, env
// (ConfigMap keys, Secret keys filled with random values, the downward
// API), mounted ConfigMaps and Secrets, memory limit and security context
// (user 65532, read-only root, no capabilities). Each container is reached
// under the names of the Services that select its pod. Then every probe of
// the rendered spec must pass: HTTP probes on the published container
// port, exec probes in the container. A wrong env name, port or probe path
// in the manifests fails here.
func TestK8sPodSpecsOnDocker(t *testing.T) {
	compose := requireDocker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	start := time.Now()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	objs := renderOverlay(t, ctx, root, "dev")

	// The images docker-compose.yml builds (warm when the cluster test ran
	// first in the same go test).
	s := newStack(t, compose, goImage(t, ctx, root))
	s.run(ctx, "build", "nats-1", "jobwire-setup", "gateway-1", "runner-1")
	t.Logf("images ready after %s", time.Since(start).Round(time.Second))

	p := newPods(t, s, objs)
	nats := p.workload(t, "StatefulSet", "jobwire-nats")
	setup := p.workload(t, "Job", "jobwire-setup")
	gateway := p.workload(t, "Deployment", "jobwire-gateway")
	runner := p.workload(t, "Deployment", "jobwire-runner")

	upStart := time.Now()
	p.start(ctx, nats, nats.Metadata.Name+"-0")
	p.waitProbes(ctx, nats, "startup", "readiness", "liveness")
	// The Job's pod runs to completion (restartPolicy OnFailure: it may
	// fail while NATS is not ready yet; here NATS is).
	if code := p.runToEnd(ctx, setup); code != 0 {
		t.Fatalf("the set-up Job's container exited %d:\n%s", code, p.logs(setup.Metadata.Name))
	}
	p.start(ctx, gateway, gateway.Metadata.Name+"-pod")
	p.start(ctx, runner, runner.Metadata.Name+"-pod")
	for _, w := range []*workload{gateway, runner} {
		p.waitProbes(ctx, w, "startup", "readiness", "liveness")
		p.checkMetrics(ctx, w)
		// The probes tell a served path from another: a path the binary
		// does not serve fails on the same port.
		probe := w.container().ReadinessProbe
		if code, err := p.get(ctx, w, probe.HTTPGet.Port, "/no-such-probe-path"); err != nil || code < 400 {
			t.Errorf("%s: GET /no-such-probe-path on the probe port: %d %v, want a 4xx", w.Metadata.Name, code, err)
		}
	}
	t.Logf("dev overlay's NATS, set-up, gateway and runner up, every probe passing, in %s (whole test %s)",
		time.Since(upStart).Round(time.Second), time.Since(start).Round(time.Second))
}

// The parts of the rendered objects this test uses (cmd/render -json).
type (
	k8sObject struct {
		Kind     string
		Metadata struct {
			Name        string
			Labels      map[string]string
			Annotations map[string]string
		}
		Data map[string]string // ConfigMap
		Spec struct {
			Selector json.RawMessage // a Service's labels; a workload's LabelSelector
			Template struct {
				Metadata struct {
					Labels      map[string]string
					Annotations map[string]string
				}
				Spec podSpec
			}
		}
	}
	workload = k8sObject
	podSpec  struct {
		Containers []container
		Volumes    []struct {
			Name   string
			Secret *struct {
				SecretName string
				Items      []struct{ Key, Path string }
			}
			ConfigMap *struct{ Name string }
		}
		SecurityContext struct {
			RunAsUser, RunAsGroup *int64
		}
	}
	container struct {
		Name, Image string
		Args        []string
		Ports       []struct {
			Name          string
			ContainerPort int
		}
		Env []struct {
			Name, Value string
			ValueFrom   *struct {
				ConfigMapKeyRef, SecretKeyRef *struct{ Name, Key string }
				FieldRef                      *struct{ FieldPath string }
				ResourceFieldRef              *struct{ Resource string }
			}
		}
		VolumeMounts []struct {
			Name, MountPath string
		}
		Resources struct {
			Limits map[string]string
		}
		SecurityContext struct {
			ReadOnlyRootFilesystem   bool
			AllowPrivilegeEscalation *bool
			Capabilities             struct{ Drop []string }
		}
		StartupProbe, LivenessProbe, ReadinessProbe *probe
	}
	probe struct {
		HTTPGet *struct {
			Path string
			Port json.RawMessage // a name or a number
		}
		Exec *struct{ Command []string }
	}
)

func (w *workload) container() *container { return &w.Spec.Template.Spec.Containers[0] }

// renderOverlay is deploy/k8s's cmd/render: the overlay as kustomize
// builds it, with the example's placeholder secrets.
func renderOverlay(t *testing.T, ctx context.Context, root, overlay string) []k8sObject {
	cmd := exec.CommandContext(ctx, "go", "run", "./cmd/render", "-json", overlay)
	cmd.Dir = filepath.Join(root, "deploy/k8s")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("deploy/k8s: go run ./cmd/render -json %s: %v\n%s", overlay, err, stderr.String())
	}
	var objs []k8sObject
	if err := json.Unmarshal(out, &objs); err != nil {
		t.Fatal(err)
	}
	return objs
}

// pods runs workloads' pods as containers on a Docker network of their
// own. Everything it makes carries the label of the stack's compose
// project, so the stack's teardown removes it when the test ends, also
// when it fails or is interrupted, and a later run removes what a killed
// one left (removeStale).
type pods struct {
	t       *testing.T
	objs    []k8sObject
	label   string // com.docker.compose.project=<project>
	network string
	secrets map[string]string // Secret key -> a random value
	dir     string            // mounted ConfigMaps and Secrets
	ids     map[string]string // pod name -> container id
}

func newPods(t *testing.T, s *stack, objs []k8sObject) *pods {
	p := &pods{t: t, objs: objs, label: "com.docker.compose.project=" + s.project, network: s.project + "_k8s", secrets: map[string]string{}, ids: map[string]string{}}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	docker(t, ctx, "network", "create", "--label", p.label, p.network)
	// Mounted files live in a folder the containers' user can read.
	p.dir = t.TempDir()
	if err := os.Chmod(p.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func (p *pods) workload(t *testing.T, kind, name string) *workload {
	for i := range p.objs {
		if p.objs[i].Kind == kind && p.objs[i].Metadata.Name == name {
			return &p.objs[i]
		}
	}
	t.Fatalf("overlays/dev renders no %s %s", kind, name)
	return nil
}

func (p *pods) configMap(name, key string) (string, bool) {
	for _, o := range p.objs {
		if o.Kind == "ConfigMap" && o.Metadata.Name == name {
			v, ok := o.Data[key]
			return v, ok
		}
	}
	return "", false
}

// secret is a random value per Secret key, the same for every pod (as the
// generated Secret would be).
func (p *pods) secret(key string) string {
	if _, ok := p.secrets[key]; !ok {
		p.secrets[key] = randomHex(16)
	}
	return p.secrets[key]
}

// dockerArgs turns a pod template into `docker run` options and the
// container's args.
func (p *pods) dockerArgs(w *workload, podName string) (opts, args []string) {
	t := p.t
	c := w.container()
	spec := w.Spec.Template.Spec
	opts = []string{"--name", p.network + "-" + podName, "--label", p.label, "--network", p.network, "--hostname", podName}
	// The names of the Services that select this pod, and the pod's own
	// DNS name under a headless Service.
	for _, svc := range p.objs {
		var selector map[string]string
		if svc.Kind != "Service" || json.Unmarshal(svc.Spec.Selector, &selector) != nil || len(selector) == 0 {
			continue
		}
		match := true
		for k, v := range selector {
			match = match && w.Spec.Template.Metadata.Labels[k] == v
		}
		if match {
			opts = append(opts, "--network-alias", svc.Metadata.Name, "--network-alias", podName+"."+svc.Metadata.Name)
		}
	}
	// Security context.
	if u := spec.SecurityContext.RunAsUser; u != nil {
		g := *u
		if spec.SecurityContext.RunAsGroup != nil {
			g = *spec.SecurityContext.RunAsGroup
		}
		opts = append(opts, "--user", fmt.Sprintf("%d:%d", *u, g))
	}
	if c.SecurityContext.ReadOnlyRootFilesystem {
		opts = append(opts, "--read-only")
	}
	if ape := c.SecurityContext.AllowPrivilegeEscalation; ape != nil && !*ape {
		opts = append(opts, "--security-opt", "no-new-privileges")
	}
	for _, cap := range c.SecurityContext.Capabilities.Drop {
		opts = append(opts, "--cap-drop", cap)
	}
	limit := int64(0)
	if m := c.Resources.Limits["memory"]; m != "" {
		limit = quantityBytes(t, m)
		opts = append(opts, "--memory", strconv.FormatInt(limit, 10))
	}
	// Env, resolved as the kubelet does.
	env := map[string]string{}
	for _, e := range c.Env {
		v := e.Value
		if f := e.ValueFrom; f != nil {
			switch {
			case f.ConfigMapKeyRef != nil:
				var ok bool
				if v, ok = p.configMap(f.ConfigMapKeyRef.Name, f.ConfigMapKeyRef.Key); !ok {
					t.Fatalf("%s env %s: no ConfigMap key %s/%s", w.Metadata.Name, e.Name, f.ConfigMapKeyRef.Name, f.ConfigMapKeyRef.Key)
				}
			case f.SecretKeyRef != nil:
				v = p.secret(f.SecretKeyRef.Key)
			case f.FieldRef != nil && f.FieldRef.FieldPath == "metadata.name":
				v = podName
			case f.ResourceFieldRef != nil && f.ResourceFieldRef.Resource == "limits.memory" && limit > 0:
				v = strconv.FormatInt(limit, 10)
			default:
				t.Fatalf("%s env %s: a valueFrom this test does not resolve", w.Metadata.Name, e.Name)
			}
		}
		env[e.Name] = v
		opts = append(opts, "--env", e.Name+"="+v)
	}
	// Mounted ConfigMaps and Secrets, as read-only files.
	for _, m := range c.VolumeMounts {
		for _, v := range spec.Volumes {
			if v.Name != m.Name {
				continue
			}
			dir := filepath.Join(p.dir, podName, v.Name)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			files := map[string]string{}
			switch {
			case v.Secret != nil:
				for _, it := range v.Secret.Items {
					files[it.Path] = p.secret(it.Key)
				}
			case v.ConfigMap != nil:
				for _, o := range p.objs {
					if o.Kind == "ConfigMap" && o.Metadata.Name == v.ConfigMap.Name {
						files = o.Data
					}
				}
			default:
				continue // a claim (NATS's data): a tmpfs below
			}
			for name, content := range files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o444); err != nil {
					t.Fatal(err)
				}
			}
			opts = append(opts, "--mount", "type=bind,source="+dir+",target="+m.MountPath+",readonly")
		}
		if !slicesContainsVolume(spec, m.Name) {
			// A volumeClaimTemplate: a writable tmpfs owned by the pod's user.
			opts = append(opts, "--tmpfs", m.MountPath+":rw,uid=65532,gid=65532,mode=0700")
		}
	}
	// Container ports, published on 127.0.0.1.
	for _, port := range c.Ports {
		opts = append(opts, "--publish", fmt.Sprintf("127.0.0.1::%d", port.ContainerPort))
	}
	// $(VAR) in args is the container's env, as in Kubernetes.
	for _, a := range c.Args {
		args = append(args, regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`).ReplaceAllStringFunc(a, func(ref string) string {
			if v, ok := env[ref[2:len(ref)-1]]; ok {
				return v
			}
			return ref
		}))
	}
	return append(opts, imageFor(c.Image)), args
}

func slicesContainsVolume(spec podSpec, name string) bool {
	for _, v := range spec.Volumes {
		if v.Name == name {
			return true
		}
	}
	return false
}

// imageFor maps a manifest's image (jobwire-gateway:latest in dev) to the
// one docker-compose.yml built here.
func imageFor(image string) string {
	name := image[strings.LastIndex(image, "/")+1:]
	if i := strings.IndexAny(name, ":@"); i >= 0 {
		name = name[:i]
	}
	return imagePrefix + strings.TrimPrefix(name, "jobwire") + ":latest"
}

// quantityBytes reads a memory quantity of the manifests (Ki, Mi, Gi or
// plain bytes).
func quantityBytes(t *testing.T, q string) int64 {
	mult := int64(1)
	for suffix, m := range map[string]int64{"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30} {
		if s, ok := strings.CutSuffix(q, suffix); ok {
			q, mult = s, m
		}
	}
	n, err := strconv.ParseInt(q, 10, 64)
	if err != nil {
		t.Fatalf("memory quantity %q: %v", q, err)
	}
	return n * mult
}

// start runs a workload's pod as a detached container.
func (p *pods) start(ctx context.Context, w *workload, podName string) {
	opts, args := p.dockerArgs(w, podName)
	id := strings.TrimSpace(docker(p.t, ctx, append(append([]string{"run", "-d"}, opts...), args...)...))
	p.ids[w.Metadata.Name] = id
}

// runToEnd runs a Job's pod and returns its exit code.
func (p *pods) runToEnd(ctx context.Context, w *workload) int {
	p.start(ctx, w, w.Metadata.Name+"-pod")
	out := strings.TrimSpace(docker(p.t, ctx, "wait", p.ids[w.Metadata.Name]))
	code, err := strconv.Atoi(out)
	if err != nil {
		p.t.Fatalf("docker wait: %q", out)
	}
	return code
}

func (p *pods) logs(name string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, "docker", "logs", "--tail", "40", p.ids[name]).CombinedOutput()
	return string(out)
}

// hostAddr is where a container port (a name or a number of the spec) is
// published.
func (p *pods) hostAddr(ctx context.Context, w *workload, port json.RawMessage) (string, error) {
	var number int
	var name string
	if json.Unmarshal(port, &number) != nil {
		if err := json.Unmarshal(port, &name); err != nil {
			return "", err
		}
		for _, cp := range w.container().Ports {
			if cp.Name == name {
				number = cp.ContainerPort
			}
		}
		if number == 0 {
			return "", fmt.Errorf("no container port named %s", name)
		}
	}
	out, err := exec.CommandContext(ctx, "docker", "port", p.ids[w.Metadata.Name], strconv.Itoa(number)).Output()
	if err != nil {
		return "", fmt.Errorf("container port %d is not published: %v", number, err)
	}
	addr := strings.TrimSpace(strings.Split(string(out), "\n")[0])
	if !strings.HasPrefix(addr, "127.0.0.1:") {
		return "", fmt.Errorf("container port %d published on %q, not 127.0.0.1", number, addr)
	}
	return addr, nil
}

// get asks a container port for path and returns the status code.
func (p *pods) get(ctx context.Context, w *workload, port json.RawMessage, path string) (int, error) {
	addr, err := p.hostAddr(ctx, w, port)
	if err != nil {
		return 0, err
	}
	rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// waitProbes waits (bounded) until each named probe of the workload's
// container passes as the kubelet would count it: an HTTP status 200–399,
// or an exec command that exits 0.
func (p *pods) waitProbes(ctx context.Context, w *workload, kinds ...string) {
	t := p.t
	c := w.container()
	probes := map[string]*probe{"startup": c.StartupProbe, "liveness": c.LivenessProbe, "readiness": c.ReadinessProbe}
	for _, kind := range kinds {
		pr := probes[kind]
		if pr == nil {
			t.Fatalf("%s has no %s probe", w.Metadata.Name, kind)
		}
		deadline, cancel := context.WithTimeout(ctx, 90*time.Second)
		var last string
		for {
			if pr.HTTPGet != nil {
				code, err := p.get(deadline, w, pr.HTTPGet.Port, pr.HTTPGet.Path)
				if err == nil && code >= 200 && code < 400 {
					break
				}
				if deadline.Err() == nil || last == "" { // not the deadline's own error
					last = fmt.Sprintf("GET %s on port %s: %d %v", pr.HTTPGet.Path, pr.HTTPGet.Port, code, err)
				}
			} else if pr.Exec != nil {
				out, err := exec.CommandContext(deadline, "docker", append([]string{"exec", p.ids[w.Metadata.Name]}, pr.Exec.Command...)...).CombinedOutput()
				if err == nil {
					break
				}
				last = fmt.Sprintf("exec %q: %v %s", pr.Exec.Command, err, out)
			} else {
				t.Fatalf("%s %s probe: neither httpGet nor exec", w.Metadata.Name, kind)
			}
			if deadline.Err() != nil {
				cancel()
				t.Fatalf("%s: %s probe never passed (%s)\n%s", w.Metadata.Name, kind, last, p.logs(w.Metadata.Name))
			}
			// A container that exited will not pass: say so now.
			if out, _ := exec.CommandContext(deadline, "docker", "inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", p.ids[w.Metadata.Name]).Output(); strings.HasPrefix(string(out), "exited") {
				cancel()
				t.Fatalf("%s: exited (%s) before its %s probe passed (%s)\n%s", w.Metadata.Name, strings.TrimSpace(string(out)), kind, last, p.logs(w.Metadata.Name))
			}
			time.Sleep(250 * time.Millisecond)
		}
		cancel()
		t.Logf("%s: %s probe passes", w.Metadata.Name, kind)
	}
}

// checkMetrics asks the port and path of the pod's prometheus.io
// annotations for metrics.
func (p *pods) checkMetrics(ctx context.Context, w *workload) {
	a := w.Spec.Template.Metadata.Annotations
	if a["prometheus.io/scrape"] != "true" {
		return
	}
	port := json.RawMessage(a["prometheus.io/port"])
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, err := p.get(ctx, w, port, a["prometheus.io/path"])
		if err == nil && code == http.StatusOK {
			p.t.Logf("%s: GET %s on %s answers 200", w.Metadata.Name, a["prometheus.io/path"], port)
			return
		}
		if time.Now().After(deadline) {
			p.t.Errorf("%s: scrape annotations name port %s path %s: %d %v", w.Metadata.Name, port, a["prometheus.io/path"], code, err)
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
}
