package spec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
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
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, &FieldError{File: file, Msg: "not valid YAML: " + trimYAMLErr(err)}
	}
	var a Application
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&a); err != nil {
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

func trimJSONErr(err error) string {
	s := err.Error()
	s = strings.TrimPrefix(s, "json: ")
	s = strings.Replace(s, "of type spec.", "of type ", 1)
	if strings.HasPrefix(s, "cannot unmarshal") {
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) {
			return fmt.Sprintf("%s: cannot be a %s (want %s)", ute.Field, ute.Value, ute.Type.String())
		}
	}
	return s
}

func trimYAMLErr(err error) string {
	s := err.Error()
	s = strings.TrimPrefix(s, "error converting YAML to JSON: ")
	s = strings.TrimPrefix(s, "yaml: ")
	return s
}
