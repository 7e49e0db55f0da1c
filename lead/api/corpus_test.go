package api

import (
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite the want lines of testdata/bad-bodies from what the API answers")

// cutLine cuts a first line starting with prefix off a corpus file.
func cutLine(data, prefix string) (line, rest string, ok bool) {
	first, rest, _ := strings.Cut(data, "\n")
	line, ok = strings.CutPrefix(first, prefix)
	return line, rest, ok
}

// TestBadSpecsThroughTheAPI posts every spec of the spec package's bad
// corpus to the lead, as the YAML the user wrote and, where it converts,
// as JSON: each is refused with 400 and the same message the plugin shows
// for the file (less the file name, which the lead does not know), and the
// knowledge base does not change.
func TestBadSpecsThroughTheAPI(t *testing.T) {
	files, err := filepath.Glob("../../internal/spec/testdata/bad/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 40 {
		t.Fatalf("only %d bad specs, want at least 40", len(files))
	}
	// The lead never sees files: the plugin reads `manifests:` and sends
	// them inline, so a spec that still names a file has no resources.
	leadSays := map[string]string{
		"manifests-missing-file": `spec.components[0].manifests: file "nope.yaml" was not read into resources`,
	}
	f := newFixture(t)
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".yaml")
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		want, _, ok := cutLine(string(data), "# want: FILE: ")
		if !ok {
			t.Fatalf("%s: first line must be '# want: FILE: MESSAGE'", file)
		}
		if w, ok := leadSays[name]; ok {
			want = w
		}
		bodies := map[string][]byte{"yaml": data}
		// Problems of the YAML text itself (syntax, a second document that
		// the conversion drops) have no JSON form.
		if js, err := yaml.YAMLToJSON(data); err == nil && !yamlOnly(want) {
			bodies["json"] = js
		}
		for form, body := range bodies {
			t.Run(name+"/"+form, func(t *testing.T) {
				before := f.hash()
				ans := call(t, f.user, "POST", f.l.url+"/v1/apps", body)
				if ans.status != http.StatusBadRequest {
					t.Fatalf("status %d %s, want 400", ans.status, ans.body)
				}
				if got := ans.err.Error(); got != want {
					t.Errorf("message\n got: %s\nwant: %s", got, want)
				}
				if f.hash() != before {
					t.Fatal("a rejected spec changed the knowledge base")
				}
			})
		}
	}
}

// yamlOnly: messages about the YAML text itself (syntax, documents).
func yamlOnly(msg string) bool {
	return strings.HasPrefix(msg, "not valid YAML") || strings.HasPrefix(msg, "more than one document")
}

// TestBadBodies replays the corpus under testdata/bad-bodies: each file is
//
//	# ROLE METHOD PATH      (ROLE: agent, the agent of edge-a, or user)
//	# want: STATUS MESSAGE  (MESSAGE as the plugin or agent prints it)
//	BODY
//
// and must be answered with exactly that status and message, changing
// nothing. go test -run TestBadBodies -update rewrites the want lines.
func TestBadBodies(t *testing.T) {
	files, err := filepath.Glob("testdata/bad-bodies/*.txt")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 30 {
		t.Fatalf("only %d bad bodies in the corpus", len(files))
	}
	f := newFixture(t)
	clients := map[string]*http.Client{"agent": f.agentA, "user": f.user}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txt"), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			reqLine, rest, ok1 := cutLine(string(data), "# ")
			wantLine, body, ok2 := cutLine(rest, "# want: ")
			req := strings.Fields(reqLine)
			if !ok1 || !ok2 || len(req) != 3 || clients[req[0]] == nil {
				t.Fatalf("%s: want '# ROLE METHOD PATH' then '# want: STATUS MESSAGE'", file)
			}
			body = strings.TrimSuffix(body, "\n")
			before := f.hash()
			ans := call(t, clients[req[0]], req[1], f.l.url+req[2], body)
			got := fmt.Sprintf("%d %s", ans.status, ans.err.Error())
			if *update {
				out := "# " + reqLine + "\n# want: " + got + "\n" + body + "\n"
				if err := os.WriteFile(file, []byte(out), 0o644); err != nil {
					t.Fatal(err)
				}
			} else if got != wantLine {
				t.Errorf("answer\n got: %s\nwant: %s", got, wantLine)
			}
			if code, _, _ := strings.Cut(wantLine, " "); code != "" {
				if n, _ := strconv.Atoi(code); n < 400 && !*update {
					t.Errorf("corpus entry expects %s, not an error", code)
				}
			}
			if ans.status < 400 {
				t.Fatalf("bad body accepted: %d %s", ans.status, ans.body)
			}
			if f.hash() != before {
				t.Fatal("a rejected body changed the knowledge base")
			}
		})
	}
}
