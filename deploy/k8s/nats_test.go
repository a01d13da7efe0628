package k8s_test

import (
	"fmt"
	"strings"
	"testing"
)

// TestNATSCluster: the routes name every node through the headless
// Service, and server names are pod names (KEDA's triggers, checked in
// deploy/k8s/keda, find a consumer's leader by it).
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

	})
}
