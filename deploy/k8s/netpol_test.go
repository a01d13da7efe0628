package k8s_test

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// actor is a pod that may send or receive traffic.
type actor struct {
	name      string
	namespace string
	labels    map[string]string
	ports     []string // "8080/TCP"
	ours      bool     // in the overlay's namespace: our policies apply
}

// TestNetworkPolicies evaluates every policy for every pair of pods and
// port, as the NetworkPolicy API defines it (a pod selected by a policy of
// a direction allows only what one of them allows), and compares the flows
// let through with the ones the deployment needs: nothing more, nothing less.
func TestNetworkPolicies(t *testing.T) {
	forEachOverlay(t, func(t *testing.T, overlay string, r *rendered) {
		var actors []actor
		for _, w := range r.workloads() {
			a := actor{name: w.pod.Labels["app.kubernetes.io/component"], namespace: r.namespace, labels: w.pod.Labels, ours: true}
			for _, c := range w.pod.Spec.Containers {
				for _, p := range c.Ports {
					a.ports = append(a.ports, fmt.Sprintf("%d/%s", p.ContainerPort, orTCP(p.Protocol)))
				}
			}
			actors = append(actors, a)
		}
		actors = append(actors,
			actor{name: "ingress-nginx", namespace: "ingress-nginx", labels: map[string]string{"app.kubernetes.io/name": "ingress-nginx"}, ports: []string{"443/TCP"}},
			actor{name: "keda", namespace: "keda", labels: map[string]string{"app.kubernetes.io/name": "keda-operator"}, ports: []string{"443/TCP"}},
			actor{name: "prometheus", namespace: "monitoring", labels: map[string]string{"app.kubernetes.io/name": "prometheus"}, ports: []string{"9090/TCP"}},
			// Not Prometheus, in Prometheus's namespace.
			actor{name: "monitoring-other", namespace: "monitoring", labels: map[string]string{"app.kubernetes.io/name": "grafana"}, ports: []string{"3000/TCP"}},
			actor{name: "kube-dns", namespace: "kube-system", labels: map[string]string{"k8s-app": "kube-dns"}, ports: []string{"53/UDP", "53/TCP"}},
			actor{name: "other-namespace", namespace: "other", labels: map[string]string{"app": "x"}, ports: []string{"80/TCP"}},
			// Another pod in jobwire's namespace (a debug pod, another app).
			actor{name: "neighbour", namespace: r.namespace, labels: map[string]string{"app": "x"}, ports: []string{"80/TCP"}, ours: true},
		)
		var got []string
		for _, src := range actors {
			for _, dst := range actors {
				for _, port := range dst.ports {
					if allowed(t, r, src, dst, port, networkingv1.PolicyTypeEgress) && allowed(t, r, src, dst, port, networkingv1.PolicyTypeIngress) {
						got = append(got, fmt.Sprintf("%s -> %s %s", src.name, dst.name, port))
					}
				}
			}
		}
		want := []string{
			"ingress-nginx -> gateway 8080/TCP",
			"gateway -> nats 4222/TCP",
			"runner -> nats 4222/TCP",
			"setup -> nats 4222/TCP",
			"nats -> nats 6222/TCP",
			"prometheus -> gateway 9464/TCP",
			"prometheus -> runner 9464/TCP",
		}
		for _, a := range []string{"gateway", "runner", "setup", "nats", "neighbour"} {
			want = append(want, a+" -> kube-dns 53/UDP", a+" -> kube-dns 53/TCP")
		}
		if overlay == "prod" {
			want = append(want, "keda -> nats 8222/TCP")
		}
		// Pods outside the namespace are not ours to restrict among
		// themselves: keep only flows that touch one of ours.
		got = slices.DeleteFunc(got, func(f string) bool {
			for _, a := range actors {
				if a.ours && (strings.HasPrefix(f, a.name+" ") || strings.Contains(f, "-> "+a.name+" ")) {
					return false
				}
			}
			return true
		})
		sort.Strings(got)
		sort.Strings(want)
		if !slices.Equal(got, want) {
			t.Errorf("flows allowed:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
		}
	})
}

func orTCP(p corev1.Protocol) corev1.Protocol {
	if p == "" {
		return corev1.ProtocolTCP
	}
	return p
}

// allowed: does the policy side dir (egress of src, ingress of dst) let
// src reach dst:port?
func allowed(t *testing.T, r *rendered, src, dst actor, port string, dir networkingv1.PolicyType) bool {
	self, peer := dst, src
	if dir == networkingv1.PolicyTypeEgress {
		self, peer = src, dst
	}
	if !self.ours {
		return true // another namespace's policies: none here
	}
	selected := false
	for _, np := range r.netpols {
		if !slices.Contains(np.Spec.PolicyTypes, dir) || !matches(t, &np.Spec.PodSelector, self.labels) {
			continue
		}
		selected = true
		var rules [][]networkingv1.NetworkPolicyPeer
		var ports [][]networkingv1.NetworkPolicyPort
		if dir == networkingv1.PolicyTypeIngress {
			for _, ru := range np.Spec.Ingress {
				rules, ports = append(rules, ru.From), append(ports, ru.Ports)
			}
		} else {
			for _, ru := range np.Spec.Egress {
				rules, ports = append(rules, ru.To), append(ports, ru.Ports)
			}
		}
		for i := range rules {
			if peersMatch(t, r.namespace, rules[i], peer) && portsMatch(t, ports[i], port) {
				return true
			}
		}
	}
	return !selected
}

func peersMatch(t *testing.T, ns string, peers []networkingv1.NetworkPolicyPeer, a actor) bool {
	if len(peers) == 0 {
		return true
	}
	for _, p := range peers {
		if p.IPBlock != nil {
			t.Fatalf("ipBlock peers are not evaluated by this test")
		}
		nsOK := a.namespace == ns
		if p.NamespaceSelector != nil {
			nsOK = matches(t, p.NamespaceSelector, map[string]string{"kubernetes.io/metadata.name": a.namespace})
		}
		podOK := p.PodSelector == nil || matches(t, p.PodSelector, a.labels)
		if nsOK && podOK {
			return true
		}
	}
	return false
}

func portsMatch(t *testing.T, ports []networkingv1.NetworkPolicyPort, port string) bool {
	if len(ports) == 0 {
		return true
	}
	for _, p := range ports {
		proto := corev1.ProtocolTCP
		if p.Protocol != nil {
			proto = *p.Protocol
		}
		if p.Port == nil || p.EndPort != nil || p.Port.Type != 0 {
			t.Fatalf("only numbered single ports are evaluated by this test: %+v", p)
		}
		if fmt.Sprintf("%d/%s", p.Port.IntVal, proto) == port {
			return true
		}
	}
	return false
}

func matches(t *testing.T, ls *metav1.LabelSelector, l map[string]string) bool {
	sel, err := metav1.LabelSelectorAsSelector(ls)
	if err != nil {
		t.Fatal(err)
	}
	return sel.Matches(labels.Set(l))
}
