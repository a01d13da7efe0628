package k8s_test

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestNATSCluster: the routes name every node through the headless
// Service, server names are pod names, and KEDA's triggers read the job
// consumers through that same Service's monitoring port.
func TestNATSCluster(t *testing.T) {
	forEachOverlay(t, func(t *testing.T, overlay string, r *rendered) {
		sts := r.statefulSets[0]
		svc := findService(r, sts.Spec.ServiceName)
		if svc == nil || svc.Spec.ClusterIP != "None" || !svc.Spec.PublishNotReadyAddresses {
			t.Fatalf("StatefulSet %s: serviceName %s must be a headless Service publishing not-ready addresses", sts.Name, sts.Spec.ServiceName)
		}
		c := sts.Spec.Template.Spec.Containers[0]
		args := strings.Join(c.Args, " ")
		if !strings.Contains(args, "--name $(POD_NAME)") {
			t.Errorf("nats args %q: the server name must be the pod name (KEDA finds a consumer's leader by it)", args)
		}
		n := int(*sts.Spec.Replicas)
		var want []string
		for i := range n {
			want = append(want, fmt.Sprintf("nats://route:$(JOBWIRE_CLUSTER_PASSWORD)@%s-%d.%s:6222", sts.Name, i, svc.Name))
		}
		switch {
		case n == 1:
			if strings.Contains(args, "--routes") || strings.Contains(args, "cluster.conf") {
				t.Errorf("one NATS node with routes or cluster.conf: %q", args)
			}
		case n == 3 || n == 5:
			if !strings.Contains(args, "-c /etc/nats/cluster.conf") || !strings.Contains(args, "--routes "+strings.Join(want, ",")) {
				t.Errorf("nats args %q: want -c /etc/nats/cluster.conf and --routes %s", args, strings.Join(want, ","))
			}
			if sts.Spec.Template.Spec.Affinity == nil || sts.Spec.Template.Spec.Affinity.PodAntiAffinity == nil {
				t.Errorf("%d NATS nodes without pod anti-affinity", n)
			}
			if len(r.pdbs) == 0 {
				t.Errorf("%d NATS nodes without a PodDisruptionBudget", n)
			}
		default:
			t.Errorf("%d NATS nodes: JetStream wants 1, 3 or 5", n)
		}

		conf, err := os.ReadFile("base/nats/nats.conf")
		if err != nil {
			t.Fatal(err)
		}
		types := builtinJobTypes(t)
		for _, so := range r.scaledObjs {
			for _, tr := range so.Spec.Triggers {
				md := tr.Metadata
				if tr.Type != "nats-jetstream" {
					t.Errorf("ScaledObject %s: trigger %s", so.Name, tr.Type)
					continue
				}
				endpoint := fmt.Sprintf("%s.%s.svc.cluster.local:8222", svc.Name, r.namespace)
				if md["natsServerMonitoringEndpoint"] != endpoint {
					t.Errorf("ScaledObject %s: natsServerMonitoringEndpoint %q, want %q", so.Name, md["natsServerMonitoringEndpoint"], endpoint)
				}
				if findPort(&sts.Spec.Template, "8222") == nil {
					t.Errorf("NATS pods declare no monitoring port 8222")
				}
				if !regexp.MustCompile(`(?m)^\s*` + regexp.QuoteMeta(md["account"]) + ` \{`).Match(conf) {
					t.Errorf("ScaledObject %s: account %q is not in nats.conf", so.Name, md["account"])
				}
				if md["stream"] != "JOBS" {
					t.Errorf("ScaledObject %s: stream %q; the work queue is JOBS (shared/jobs)", so.Name, md["stream"])
				}
				typ, ok := strings.CutPrefix(md["consumer"], "runners_")
				if !ok || !types[typ] {
					t.Errorf("ScaledObject %s: consumer %q is not runners_<type> of a built-in type %v (shared/jobs.ConsumerName)", so.Name, md["consumer"], types)
				}
				for _, k := range []string{"lagThreshold", "activationLagThreshold"} {
					if md[k] == "" {
						t.Errorf("ScaledObject %s: %s unset", so.Name, k)
					}
				}
			}
		}
		if overlay == "prod" && len(r.scaledObjs) == 0 {
			t.Errorf("prod: no ScaledObject for the runners")
		}
	})
}

// builtinJobTypes are the Name fields of services/runner/jobtypes.
func builtinJobTypes(t *testing.T) map[string]bool {
	if !strings.Contains(grepDir(t, "shared/jobs"), `return "runners_" + typ`) {
		t.Fatalf("shared/jobs.ConsumerName no longer names consumers runners_<type>")
	}
	types := map[string]bool{}
	for _, m := range regexp.MustCompile(`Name:\s+"([a-z0-9_.-]+)"`).FindAllStringSubmatch(grepDir(t, "services/runner/jobtypes"), -1) {
		types[m[1]] = true
	}
	if len(types) == 0 {
		t.Fatal("no built-in job types found in services/runner/jobtypes")
	}
	return types
}
