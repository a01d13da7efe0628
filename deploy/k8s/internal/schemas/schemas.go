// Package schemas makes strict JSON schemas for kubeconform, offline: one
// file per GroupVersionKind of the Kubernetes OpenAPI document that ships
// in the k8s.io/kubernetes module (api/openapi-spec/swagger.json), and one
// per version of a CustomResourceDefinition (KEDA's ScaledObject). Strict
// means what `kubectl --validate=strict` means: every object schema that
// lists its properties allows no others (additionalProperties: false),
// except where Kubernetes keeps unknown fields on purpose.
//
// The files are named as kubeconform's -schema-location template
// DIR/{{.ResourceKind}}{{.KindSuffix}}.json expects (Location). Each file
// stands alone: the definitions it refers to are copied into it.
package schemas

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"
)

// Location is the -schema-location template of a folder of these files
// (kubeconform's template variables: ResourceKind is the kind in lower
// case, KindSuffix "-<first label of the group>-<version>").
func Location(dir string) string {
	return filepath.Join(dir, "{{.ResourceKind}}{{.KindSuffix}}.json")
}

// FileName is the file kubeconform looks for: the kind in lower case and
// the suffix its registry computes from apiVersion ("apps/v1" →
// "-apps-v1", "v1" → "-v1", "keda.sh/v1alpha1" → "-keda-v1alpha1").
func FileName(apiVersion, kind string) string {
	group, version, found := strings.Cut(apiVersion, "/")
	suffix := "-" + strings.ToLower(strings.Split(group, ".")[0])
	if found {
		suffix += "-" + strings.ToLower(version)
	}
	return strings.ToLower(kind) + suffix + ".json"
}

type schema = map[string]any

// The two apimachinery types that are not what their OpenAPI type says
// (a string): both are written as numbers too, and the API accepts both.
var special = map[string]string{
	"io.k8s.apimachinery.pkg.util.intstr.IntOrString": "integer",
	"io.k8s.apimachinery.pkg.api.resource.Quantity":   "number",
}

// FromSwagger writes a strict schema for every kind of an OpenAPI v2
// document into dir and returns how many it wrote.
func FromSwagger(swagger []byte, dir string) (int, error) {
	var doc struct {
		Definitions map[string]schema `json:"definitions"`
	}
	if err := json.Unmarshal(swagger, &doc); err != nil {
		return 0, fmt.Errorf("swagger.json: %w", err)
	}
	defs := doc.Definitions
	if len(defs) == 0 {
		return 0, fmt.Errorf("swagger.json has no definitions")
	}
	for name, d := range defs {
		if other, ok := special[name]; ok {
			defs[name] = schema{"description": d["description"], "oneOf": []any{schema{"type": "string"}, schema{"type": other}}}
			continue
		}
		strict(d)
	}
	written := map[string]string{} // file -> definition
	names := make([]string, 0, len(defs))
	for name := range defs {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		gvks, _ := defs[name]["x-kubernetes-group-version-kind"].([]any)
		for _, g := range gvks {
			gvk, _ := g.(schema)
			group, _ := gvk["group"].(string)
			version, _ := gvk["version"].(string)
			kind, _ := gvk["kind"].(string)
			apiVersion := version
			if group != "" {
				apiVersion = group + "/" + version
			}
			file := FileName(apiVersion, kind)
			if other, ok := written[file]; ok {
				if other != name {
					return 0, fmt.Errorf("%s: both %s and %s", file, other, name)
				}
				continue
			}
			if err := write(filepath.Join(dir, file), standalone(defs, name)); err != nil {
				return 0, err
			}
			written[file] = name
		}
	}
	return len(written), nil
}

// standalone is definition name with a copy of every definition it
// reaches, so the file needs no other.
func standalone(defs map[string]schema, name string) schema {
	reached := map[string]any{}
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case schema:
			if ref, ok := v["$ref"].(string); ok {
				target := strings.TrimPrefix(ref, "#/definitions/")
				if _, seen := reached[target]; !seen {
					reached[target] = defs[target]
					walk(defs[target])
				}
			}
			for _, c := range v {
				walk(c)
			}
		case []any:
			for _, c := range v {
				walk(c)
			}
		}
	}
	root := schema{}
	for k, v := range defs[name] {
		root[k] = v
	}
	walk(root)
	if len(reached) > 0 {
		root["definitions"] = reached
	}
	return root
}

// FromCRD writes a strict schema for every version of a
// CustomResourceDefinition (YAML) into dir and returns how many it wrote.
func FromCRD(crdYAML []byte, dir string) (int, error) {
	var crd struct {
		Kind string `json:"kind"`
		Spec struct {
			Group string `json:"group"`
			Names struct {
				Kind string `json:"kind"`
			} `json:"names"`
			Versions []struct {
				Name   string `json:"name"`
				Schema struct {
					OpenAPIV3Schema schema `json:"openAPIV3Schema"`
				} `json:"schema"`
			} `json:"versions"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(crdYAML, &crd); err != nil {
		return 0, err
	}
	if crd.Kind != "CustomResourceDefinition" || len(crd.Spec.Versions) == 0 {
		return 0, fmt.Errorf("not a CustomResourceDefinition with versions")
	}
	n := 0
	for _, v := range crd.Spec.Versions {
		s := v.Schema.OpenAPIV3Schema
		if s == nil {
			return n, fmt.Errorf("%s %s: no openAPIV3Schema", crd.Spec.Names.Kind, v.Name)
		}
		strict(s)
		if err := write(filepath.Join(dir, FileName(crd.Spec.Group+"/"+v.Name, crd.Spec.Names.Kind)), s); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// strict makes s and the schemas inside it refuse properties they do not
// list, and turns OpenAPI's extensions into JSON schema (draft 4, what
// kubeconform compiles with): int-or-string and nullable.
func strict(s schema) {
	if props, ok := s["properties"].(schema); ok {
		for _, p := range props {
			if p, ok := p.(schema); ok {
				strict(p)
			}
		}
		if _, set := s["additionalProperties"]; !set && s["x-kubernetes-preserve-unknown-fields"] != true {
			s["additionalProperties"] = false
		}
	}
	for _, k := range []string{"items", "additionalProperties", "not"} {
		if c, ok := s[k].(schema); ok {
			strict(c)
		}
	}
	for _, k := range []string{"allOf", "anyOf", "oneOf"} {
		if list, ok := s[k].([]any); ok {
			for _, c := range list {
				if c, ok := c.(schema); ok {
					strict(c)
				}
			}
		}
	}
	if s["x-kubernetes-int-or-string"] == true {
		delete(s, "type")
		s["anyOf"] = []any{schema{"type": "integer"}, schema{"type": "string"}}
	}
	if t, ok := s["type"].(string); ok && s["nullable"] == true {
		s["type"] = []any{t, "null"}
	}
}

func write(path string, s schema) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}
