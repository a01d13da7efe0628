// Package metricstest reads Prometheus figures in tests: from a real
// scrape of a /metrics endpoint (parsed as Prometheus parses it) or from
// collectors gathered in a registry of the test's own.
package metricstest

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Families are metric families by name.
type Families map[string]*dto.MetricFamily

// Scrape GETs url (a /metrics endpoint) and parses the text exposition.
func Scrape(t testing.TB, url string) Families {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: %s", url, resp.Status)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("scrape %s: Content-Type %q, want Prometheus' text format", url, ct)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	return fams
}

// Gather collects cs in a registry of its own (which checks them as a
// process's registry would) and returns what they hold.
func Gather(t testing.TB, cs ...prometheus.Collector) Families {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			t.Fatalf("register: %v", err)
		}
	}
	got, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	fams := Families{}
	for _, f := range got {
		fams[f.GetName()] = f
	}
	return fams
}

// Value adds up the series of metric name whose labels include the given
// pairs (name, value, name, value …): a counter's or gauge's value, a
// histogram's count of observations. 0 if there is none.
func (f Families) Value(name string, labels ...string) float64 {
	v, _ := f.value(name, labels, func(m *dto.Metric) float64 {
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		case m.Untyped != nil:
			return m.Untyped.GetValue()
		}
		return 0
	})
	return v
}

// Sum adds up the sums of the matching series of histogram name.
func (f Families) Sum(name string, labels ...string) float64 {
	v, _ := f.value(name, labels, func(m *dto.Metric) float64 { return m.GetHistogram().GetSampleSum() })
	return v
}

// Has reports whether a series of name with the given label pairs exists.
func (f Families) Has(name string, labels ...string) bool {
	_, n := f.value(name, labels, func(*dto.Metric) float64 { return 0 })
	return n > 0
}

func (f Families) value(name string, labels []string, of func(*dto.Metric) float64) (float64, int) {
	if len(labels)%2 != 0 {
		panic(fmt.Sprintf("labels of %s: pairs of name and value, got %q", name, labels))
	}
	fam := f[name]
	if fam == nil {
		return 0, 0
	}
	sum, n := 0.0, 0
series:
	for _, m := range fam.GetMetric() {
		for i := 0; i < len(labels); i += 2 {
			if labelValue(m, labels[i]) != labels[i+1] {
				continue series
			}
		}
		sum += of(m)
		n++
	}
	return sum, n
}

func labelValue(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// Names lists the families' names that start with prefix, sorted.
func (f Families) Names(prefix string) []string {
	var out []string
	for name := range f {
		if strings.HasPrefix(name, prefix) {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// LabelValues lists every label of every series as "metric{label}=value",
// sorted and without repeats.
func (f Families) LabelValues() []string {
	var out []string
	for name, fam := range f {
		for _, m := range fam.GetMetric() {
			for _, l := range m.GetLabel() {
				out = append(out, fmt.Sprintf("%s{%s}=%s", name, l.GetName(), l.GetValue()))
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Described lists the metrics cs describe, whether or not they have a
// series yet: name → label names (variable and constant), sorted.
func Described(cs ...prometheus.Collector) map[string][]string {
	ch := make(chan *prometheus.Desc)
	go func() {
		defer close(ch)
		for _, c := range cs {
			c.Describe(ch)
		}
	}()
	out := map[string][]string{}
	for d := range ch {
		// Desc keeps its fields to itself; its String is stable:
		// Desc{fqName: "…", help: "…", unit: "…", constLabels: {a="x"}, variableLabels: {b,c}}
		m := descString.FindStringSubmatch(d.String())
		if m == nil {
			panic("unexpected Desc format: " + d.String())
		}
		var labels []string
		for _, kv := range strings.Split(m[2], ",") {
			if name, _, _ := strings.Cut(kv, "="); name != "" {
				labels = append(labels, name)
			}
		}
		for _, l := range strings.Split(m[3], ",") {
			if l = strings.TrimSuffix(strings.TrimPrefix(l, "c("), ")"); l != "" {
				labels = append(labels, l)
			}
		}
		slices.Sort(labels)
		out[m[1]] = slices.Compact(append(out[m[1]], labels...))
	}
	return out
}

var descString = regexp.MustCompile(`^Desc\{fqName: "([^"]+)", .*constLabels: \{(.*)\}, variableLabels: \{(.*)\}\}$`)

// Doc is a metric as a documentation table row describes it.
type Doc struct {
	Type   string   // counter, gauge, histogram
	Labels []string // sorted
}

// Documented reads the metric rows of a Markdown file (docs/operations.md):
// | `jobwire_…` | type | `label`, `label` (or –) | meaning |.
func Documented(t testing.TB, path string) map[string]Doc {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]Doc{}
	for _, line := range strings.Split(string(b), "\n") {
		m := docRow.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		if _, dup := out[m[1]]; dup {
			t.Errorf("%s lists %s twice", path, m[1])
		}
		var labels []string
		for _, l := range strings.Split(m[3], ",") {
			if l = strings.Trim(strings.TrimSpace(l), "`"); l != "" && l != "–" {
				labels = append(labels, l)
			}
		}
		slices.Sort(labels)
		out[m[1]] = Doc{Type: m[2], Labels: labels}
	}
	if len(out) == 0 {
		t.Fatalf("%s: no metric rows", path)
	}
	return out
}

var docRow = regexp.MustCompile("^\\| `(jobwire_[a-z0-9_]+)` \\| (counter|gauge|histogram) \\| ([^|]*) \\|")
