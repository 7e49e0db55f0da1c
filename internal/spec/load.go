package spec

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// Decode reads one Application from YAML or JSON. Unknown fields are an
// error. file names the source in errors.
func Decode(data []byte, file string) (*Application, error) {
	if len(data) > MaxSpecBytes {
		return nil, &FieldError{File: file, Msg: fmt.Sprintf("spec is %d bytes, larger than the limit of %d", len(data), MaxSpecBytes)}
	}
	if n := documents(data); n > 1 {
		return nil, &FieldError{File: file, Msg: "more than one document; put one Application per file"}
	}
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, &FieldError{File: file, Msg: "not valid YAML: " + trimYAMLErr(err)}
	}
	var a Application
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&a); err != nil {
		if strings.Contains(err.Error(), "unknown field") {
			// encoding/json names the field but not where it is.
			var raw any
			if json.Unmarshal(js, &raw) == nil {
				if path := unknownField(raw, appSchema, ""); path != "" {
					return nil, &FieldError{File: file, Field: path, Msg: "unknown field"}
				}
			}
		}
		return nil, &FieldError{File: file, Msg: trimJSONErr(err)}
	}
	if dec.More() {
		return nil, &FieldError{File: file, Msg: "more than one document; put one Application per file"}
	}
	return &a, nil
}

// Load reads the Application in path and the manifest files it names
// (relative to path), leaving every component with inline Resources, and
// validates the result. Errors name the file and field at fault.
func Load(path string, opts ValidateOptions) (*Application, error) {
	data, err := readLimited(path, MaxSpecBytes)
	if err != nil {
		return nil, err
	}
	return LoadBytes(data, path, filepath.Dir(path), opts)
}

// LoadBytes is Load for a spec already in memory; manifest paths resolve
// against dir.
func LoadBytes(data []byte, file, dir string, opts ValidateOptions) (*Application, error) {
	a, err := Decode(data, file)
	if err != nil {
		return nil, err
	}
	total := len(data)
	for i := range a.Spec.Components {
		c := &a.Spec.Components[i]
		if c.Manifests == "" {
			continue
		}
		if len(c.Resources) > 0 {
			return nil, &FieldError{File: file, Field: fmt.Sprintf("spec.components[%d]", i), Msg: "give either manifests or resources, not both"}
		}
		mpath := c.Manifests
		if !filepath.IsAbs(mpath) {
			mpath = filepath.Join(dir, mpath)
		}
		raw, err := readLimited(mpath, MaxManifestFileLen)
		if err != nil {
			var fe *FieldError
			if errors.As(err, &fe) {
				fe.Field = fmt.Sprintf("spec.components[%d].manifests", i)
				fe.File = file
				fe.Msg = fmt.Sprintf("%s: %s", c.Manifests, fe.Msg)
				return nil, fe
			}
			return nil, err
		}
		total += len(raw)
		if total > MaxSpecBytes {
			return nil, &FieldError{File: file, Msg: fmt.Sprintf("spec with its manifests is larger than the limit of %d bytes", MaxSpecBytes)}
		}
		objs, err := DecodeObjects(raw, mpath)
		if err != nil {
			return nil, err
		}
		c.Resources = objs
		c.Manifests = ""
	}
	if err := Validate(a, opts); err != nil {
		var fe *FieldError
		if errors.As(err, &fe) && fe.File == "" {
			fe.File = file
		}
		return nil, err
	}
	return a, nil
}

// DecodeObjects reads every object in a YAML (multi-document) or JSON stream;
// a List is expanded into its items and empty documents are skipped.
func DecodeObjects(data []byte, file string) ([]Object, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var out []Object
	for doc := 0; ; doc++ {
		var obj Object
		err := dec.Decode(&obj)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, &FieldError{File: file, Msg: fmt.Sprintf("document %d is not a valid object: %s", doc+1, trimYAMLErr(err))}
		}
		if len(obj) == 0 {
			continue
		}
		if kind, _ := obj["kind"].(string); strings.HasSuffix(kind, "List") {
			if items, ok := obj["items"].([]any); ok {
				for _, it := range items {
					m, ok := it.(map[string]any)
					if !ok {
						return nil, &FieldError{File: file, Msg: fmt.Sprintf("document %d: a List item is not an object", doc+1)}
					}
					out = append(out, m)
				}
				continue
			}
		}
		out = append(out, obj)
	}
	if len(out) == 0 {
		return nil, &FieldError{File: file, Msg: "holds no objects"}
	}
	return out, nil
}

func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, &FieldError{File: path, Msg: "file not found"}
		}
		return nil, &FieldError{File: path, Msg: "cannot read: " + errors.Unwrap(err).Error()}
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, &FieldError{File: path, Msg: "cannot read: " + err.Error()}
	}
	if int64(len(data)) > limit {
		return nil, &FieldError{File: path, Msg: fmt.Sprintf("larger than the limit of %d bytes", limit)}
	}
	return data, nil
}

// documents counts the non-empty YAML documents in data.
func documents(data []byte) int {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	n := 0
	for {
		doc, err := r.Read()
		if err != nil {
			return n
		}
		if len(bytes.TrimSpace(stripComments(doc))) > 0 {
			n++
		}
	}
}

func stripComments(doc []byte) []byte {
	var out []byte
	for _, line := range bytes.Split(doc, []byte("\n")) {
		if t := bytes.TrimSpace(line); len(t) > 0 && t[0] != '#' {
			out = append(out, line...)
			out = append(out, '\n')
		}
	}
	return out
}

// schema is the shape of the spec's fields, to say where an unknown one is.
type schema map[string]schema

var appSchema = schema{
	"apiVersion": nil, "kind": nil,
	"metadata": {"name": nil, "namespace": nil, "labels": {"*": nil}, "annotations": {"*": nil}},
	"spec": {
		"qos":        {"energy": nil, "cost": nil, "performance": nil},
		"components": {"[]": {"name": nil, "tier": nil, "manifests": nil, "resources": {"[]": {"*": nil}}}},
	},
}

// unknownField returns the path of the first field of v that sc does not
// know, in sorted order; "" if none.
func unknownField(v any, sc schema, path string) string {
	if sc == nil {
		return ""
	}
	if _, any := sc["*"]; any {
		return ""
	}
	switch x := v.(type) {
	case []any:
		if item, ok := sc["[]"]; ok {
			for i, e := range x {
				if p := unknownField(e, item, fmt.Sprintf("%s[%d]", path, i)); p != "" {
					return p
				}
			}
		}
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			sub, known := sc[k]
			p := k
			if path != "" {
				p = path + "." + k
			}
			if !known {
				return p
			}
			if q := unknownField(x[k], sub, p); q != "" {
				return q
			}
		}
	}
	return ""
}

func trimJSONErr(err error) string {
	s := err.Error()
	s = strings.TrimPrefix(s, "json: ")
	var ute *json.UnmarshalTypeError
	if errors.As(err, &ute) {
		return fmt.Sprintf("%s: cannot be %s (want %s)", ute.Field, article(ute.Value), typeName(ute.Type.String()))
	}
	return s
}

func article(v string) string {
	if v == "" {
		return "empty"
	}
	if strings.ContainsRune("aeiou", rune(v[0])) {
		return "an " + v
	}
	return "a " + v
}

// typeName says a Go type the way a person writing YAML thinks of it.
func typeName(t string) string {
	switch {
	case strings.HasPrefix(t, "[]"):
		return "a list"
	case strings.HasPrefix(t, "map["), strings.HasPrefix(t, "spec."):
		return "an object"
	case t == "float64", strings.HasPrefix(t, "int"):
		return "a number"
	case t == "string", t == "fleet.Tier":
		return "a string"
	case t == "bool":
		return "true or false"
	}
	return t
}

func trimYAMLErr(err error) string {
	s := err.Error()
	if strings.Contains(s, "unsupported value: NaN") || strings.Contains(s, "unsupported value: +Inf") || strings.Contains(s, "unsupported value: -Inf") {
		return "a weight or number is .nan or .inf; numbers must be finite"
	}
	s = strings.TrimPrefix(s, "error converting YAML to JSON: ")
	s = strings.TrimPrefix(s, "yaml: ")
	return s
}
