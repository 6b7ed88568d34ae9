package main

import (
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"github.com/urfave/cli/v2/altsrc"
	"gopkg.in/yaml.v3"
)

// configFile is a parsed --config file: the flags' values by long name,
// and the answers table.
//
// It is read once into a yaml.Node and walked here, in linear time:
// decoding a mapping into a Go map, as altsrc's YAML source and
// yaml.Unmarshal do, runs yaml.v3's duplicate-key check, which compares
// every key with every other (an answers table of 100,000 entries took
// minutes).
type configFile struct {
	path    string
	values  map[string]any    // every key but answers, decoded
	answers map[string]string // nil when the file has none
}

// readConfigFile reads and parses path.
func readConfigFile(path string) (*configFile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	f := &configFile{path: path, values: map[string]any{}}
	if len(doc.Content) == 0 {
		return f, nil // empty, or only comments
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("config %s: yaml: line %d: the file must be a map of settings (key: value), not %s", path, root.Line, kindName(root))
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		key, value := root.Content[i], root.Content[i+1]
		if _, dup := f.values[key.Value]; dup || key.Value == "answers" && f.answers != nil {
			return nil, fmt.Errorf("config %s: line %d: %q is set twice", path, key.Line, key.Value)
		}
		if key.Value == "answers" {
			if f.answers, err = decodeAnswers(value); err != nil {
				return nil, fmt.Errorf("config %s: answers: %w", path, err)
			}
			continue
		}
		var v any
		if err := value.Decode(&v); err != nil {
			return nil, fmt.Errorf("config %s: %s: %w", path, key.Value, err)
		}
		f.values[key.Value] = v
	}
	return f, nil
}

// decodeAnswers reads the answers: mapping, question by question, each
// checked against the ones before through a Go map.
func decodeAnswers(n *yaml.Node) (map[string]string, error) {
	if n.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("line %d: must be a map of question: answer, not %s", n.Line, kindName(n))
	}
	answers := make(map[string]string, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		q, a := n.Content[i], n.Content[i+1]
		if q.Kind != yaml.ScalarNode || a.Kind != yaml.ScalarNode {
			return nil, fmt.Errorf("line %d: a question and its answer must be strings", q.Line)
		}
		if _, dup := answers[q.Value]; dup {
			return nil, fmt.Errorf("line %d: question %q is listed twice", q.Line, q.Value)
		}
		answers[q.Value] = a.Value
	}
	return answers, nil
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a map"
	}
	return strconv.Quote(n.Value)
}

// check rejects what altsrc would silently ignore: a key that is no flag (a
// typo must not pass for a setting), and a value of the wrong type, whether
// or not a flag on the command line hides it.
func (f *configFile) check(flags []cli.Flag) error {
	known := map[string]cli.Flag{}
	for _, fl := range flags {
		if name := fl.Names()[0]; name != "config" {
			known[name] = fl
		}
	}
	var unknown []string
	for k := range f.values {
		if _, ok := known[k]; !ok {
			unknown = append(unknown, k)
		}
	}
	slices.Sort(unknown)
	switch len(unknown) {
	case 0:
	case 1:
		return fmt.Errorf("config %s: unknown key %q", f.path, unknown[0])
	default:
		return fmt.Errorf("config %s: unknown keys %s", f.path, quoteAll(unknown))
	}
	for _, name := range slices.Sorted(maps.Keys(f.values)) {
		if want := configValueProblem(known[name], f.values[name]); want != "" {
			return fmt.Errorf("config %s: %s: %v is not %s", f.path, name, f.values[name], want)
		}
	}
	return nil
}

// quoteAll quotes each of xs and joins them: "a", "b".
func quoteAll(xs []string) string {
	q := make([]string, len(xs))
	for i, x := range xs {
		q[i] = strconv.Quote(x)
	}
	return strings.Join(q, ", ")
}

// configValueProblem says what v, as YAML decoded it, should have been for
// flag f; "" when it is fine.
func configValueProblem(f cli.Flag, v any) string {
	ok := true
	want := ""
	switch f.(type) {
	case *altsrc.IntFlag:
		_, ok = v.(int)
		want = "a whole number"
	case *altsrc.BoolFlag:
		_, ok = v.(bool)
		want = "true or false"
	case *altsrc.StringFlag:
		_, ok = v.(string)
		want = "a string"
	case *altsrc.StringSliceFlag:
		ok = stringList(v) != nil
		want = "a string or a list of strings"
	case *altsrc.DurationFlag:
		str, isString := v.(string)
		_, err := time.ParseDuration(str)
		ok = isString && err == nil
		want = "a duration such as 30s or 5m"
	}
	if ok {
		return ""
	}
	return want
}

// stringList is v as a list of strings (a string is a list of one); nil
// when it is neither.
func stringList(v any) []any {
	switch v := v.(type) {
	case string:
		return []any{v}
	case []any:
		for _, x := range v {
			if _, ok := x.(string); !ok {
				return nil
			}
		}
		return v
	}
	return nil
}

// inputSource hands the file's values to altsrc, which gives them to the
// flags the command line did not set.
func (f *configFile) inputSource(flags []cli.Flag) altsrc.InputSourceContext {
	m := make(map[interface{}]interface{}, len(f.values))
	for k, v := range f.values {
		if _, isList := flagByName(flags, k).(*altsrc.StringSliceFlag); isList {
			v = stringList(v)
		}
		m[k] = v
	}
	return altsrc.NewMapInputSource(f.path, m)
}

func flagByName(flags []cli.Flag, name string) cli.Flag {
	for _, f := range flags {
		if f.Names()[0] == name {
			return f
		}
	}
	return nil
}
