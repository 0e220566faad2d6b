package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/conveyorhq/conveyor/sink"
)

// origins remembers where each node came from (a file or an environment variable), so an
// error in a merged config can say where to fix it.
type origins map[*yaml.Node]string

func (o origins) record(n *yaml.Node, src string) {
	if o == nil || n == nil {
		return
	}
	o[n] = src
	for _, c := range n.Content {
		o.record(c, src)
	}
}

// where formats a node's position: "prod.yaml:12", "line 12" or "$CONVEYOR_X".
func (o origins) where(n *yaml.Node) string {
	src := o[n]
	switch {
	case strings.HasPrefix(src, "$"):
		return "from " + src
	case src != "" && n.Line > 0:
		return fmt.Sprintf("%s:%d", src, n.Line)
	case n.Line > 0:
		return fmt.Sprintf("line %d", n.Line)
	}
	return ""
}

var (
	yamlUnmarshaler = reflect.TypeFor[yaml.Unmarshaler]()
	yamlNodeType    = reflect.TypeFor[yaml.Node]()
	durationType    = reflect.TypeFor[time.Duration]()
)

// checker walks a YAML tree against the Go type it will be decoded into. It reports
// every unknown key with its path and a did-you-mean hint, and every value of the wrong
// type with its path (never echoing the value, which may be a secret). On the way it
// normalises units: "7d" for time.Duration fields, "1MiB" for integer fields named
// *_bytes, and reads FIELD_file keys into FIELD for string fields (Kubernetes and Docker
// secrets).
type checker struct {
	org  origins
	errs []error
}

func (c *checker) fail(n *yaml.Node, path, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if w := c.org.where(n); w != "" {
		msg += " (" + w + ")"
	}
	c.errs = append(c.errs, fmt.Errorf("%s: %s", path, msg))
}

func (c *checker) err() error { return errors.Join(c.errs...) }

// checkKeys is the entry point: root is a document or mapping node.
func checkKeys(root *yaml.Node, t reflect.Type, org origins) error {
	c := &checker{org: org}
	n := root
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return nil
		}
		n = n.Content[0]
	}
	if n.Kind == 0 {
		return nil
	}
	c.walk(n, t, "", "")
	return c.err()
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && (n.Tag == "!!null" || (n.Tag == "" && n.Style == 0 && (n.Value == "" || n.Value == "~" || n.Value == "null")))
}

func (c *checker) walk(n *yaml.Node, t reflect.Type, path, key string) {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if isNull(n) || t == yamlNodeType {
		return
	}
	if path == "sinks" && t.Kind() == reflect.Map && t.Elem() == yamlNodeType {
		c.sinks(n)
		return
	}
	if t == durationType {
		c.duration(n, path)
		return
	}
	if reflect.PointerTo(t).Implements(yamlUnmarshaler) || t.Implements(yamlUnmarshaler) {
		if err := n.Decode(reflect.New(t).Interface()); err != nil {
			c.fail(n, path, "%s", strings.TrimPrefix(stripLine(err.Error()), "yaml: "))
		}
		return
	}
	switch t.Kind() {
	case reflect.Pointer:
		c.walk(n, t.Elem(), path, key)
	case reflect.Struct:
		c.mapping(n, t, path)
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			c.fail(n, path, "expected a mapping of names to values")
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			c.walk(n.Content[i+1], t.Elem(), join(path, n.Content[i].Value), n.Content[i].Value)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			c.fail(n, path, "expected a list")
			return
		}
		for i, item := range n.Content {
			c.walk(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i), key)
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if n.Kind != yaml.ScalarNode {
			c.fail(n, path, "expected a number")
			return
		}
		if strings.HasSuffix(key, "_bytes") {
			if _, err := strconv.ParseInt(n.Value, 10, 64); err != nil {
				v, err := ParseSize(n.Value)
				if err != nil {
					c.fail(n, path, "%v", err)
					return
				}
				n.Value, n.Tag, n.Style = strconv.FormatInt(v, 10), "!!int", 0
			}
		}
		if err := n.Decode(reflect.New(t).Interface()); err != nil {
			c.fail(n, path, "expected a whole number")
		}
	case reflect.Float32, reflect.Float64:
		if n.Kind != yaml.ScalarNode || n.Decode(reflect.New(t).Interface()) != nil {
			c.fail(n, path, "expected a number")
		}
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.Decode(reflect.New(t).Interface()) != nil {
			c.fail(n, path, "expected true or false")
		}
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			c.fail(n, path, "expected a single value, not a list or mapping")
		}
	}
}

func (c *checker) duration(n *yaml.Node, path string) {
	if n.Kind != yaml.ScalarNode {
		c.fail(n, path, "expected a duration like \"30s\"")
		return
	}
	d, err := ParseDuration(n.Value)
	if err != nil {
		c.fail(n, path, "%v", err)
		return
	}
	n.Value, n.Tag, n.Style = d.String(), "!!str", 0
}

// stripLine drops yaml's "line N: " prefix; the checker adds its own position.
func stripLine(s string) string {
	if rest, ok := strings.CutPrefix(s, "line "); ok {
		if i := strings.Index(rest, ": "); i >= 0 {
			if _, err := strconv.Atoi(rest[:i]); err == nil {
				return rest[i+2:]
			}
		}
	}
	return s
}

// yamlFields maps a struct's YAML keys to its fields (inline structs flattened).
func yamlFields(t reflect.Type) map[string]reflect.StructField {
	out := map[string]reflect.StructField{}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("yaml")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if strings.Contains(","+opts+",", ",inline,") && f.Type.Kind() == reflect.Struct {
			for k, v := range yamlFields(f.Type) {
				out[k] = v
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = f
	}
	return out
}

func (c *checker) mapping(n *yaml.Node, t reflect.Type, path string) {
	if n.Kind != yaml.MappingNode {
		c.fail(n, cmpPath(path), "expected a mapping (key: value lines)")
		return
	}
	fields := yamlFields(t)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		f, ok := fields[k.Value]
		if !ok {
			if base, isFile := strings.CutSuffix(k.Value, "_file"); isFile {
				if bf, ok := fields[base]; ok && bf.Type.Kind() == reflect.String {
					if c.secretFile(n, i, base, path) {
						i -= 2
					}
					continue
				}
			}
			names := make([]string, 0, len(fields))
			for name := range fields {
				names = append(names, name)
			}
			msg := "unknown key"
			if s := suggest(k.Value, names); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			c.fail(k, join(path, k.Value), "%s", msg)
			continue
		}
		c.walk(v, f.Type, join(path, k.Value), k.Value)
	}
}

func cmpPath(p string) string {
	if p == "" {
		return "config"
	}
	return p
}

func emptyValue(n *yaml.Node) bool { return isNull(n) || (n.Kind == yaml.ScalarNode && n.Value == "") }

// secretFile turns "FIELD_file: path" at n.Content[i] into "FIELD: <file contents>"
// (trailing newlines dropped). It reports whether it removed the pair at i.
func (c *checker) secretFile(n *yaml.Node, i int, base, path string) bool {
	k, v := n.Content[i], n.Content[i+1]
	field := join(path, base)
	baseIdx := -1
	for j := 0; j+1 < len(n.Content); j += 2 {
		if n.Content[j].Value == base {
			baseIdx = j
		}
	}
	if baseIdx >= 0 && !emptyValue(n.Content[baseIdx+1]) && !emptyValue(v) {
		c.fail(k, field, "%s and %s_file are both set; use one", base, base)
		return false
	}
	if emptyValue(v) {
		n.Content = slices.Delete(n.Content, i, i+2)
		return true
	}
	if v.Kind != yaml.ScalarNode {
		c.fail(v, field+"_file", "expected a file path")
		return false
	}
	b, err := os.ReadFile(v.Value)
	if err != nil {
		c.fail(v, field+"_file", "%v", err)
		return false
	}
	content := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: strings.TrimRight(string(b), "\r\n"), Line: v.Line, Column: v.Column}
	if baseIdx >= 0 {
		n.Content[baseIdx+1] = content
		n.Content = slices.Delete(n.Content, i, i+2)
		return true
	}
	k.Value = base
	n.Content[i+1] = content
	return false
}

// suggest returns the candidate closest to key by edit distance, if it is close enough
// to be a typo.
func suggest(key string, candidates []string) string {
	best, bestD := "", -1
	for _, c := range candidates {
		d := levenshtein(key, c)
		if bestD < 0 || d < bestD || (d == bestD && c < best) {
			best, bestD = c, d
		}
	}
	if bestD < 0 || bestD > max(2, len(key)/3) {
		return ""
	}
	return best
}

func levenshtein(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

// sinks checks each sink block against the config type its sink package registered;
// decodeSink reports a missing or unknown type.
func (c *checker) sinks(n *yaml.Node) {
	if n.Kind != yaml.MappingNode {
		c.fail(n, "sinks", "expected a mapping of sink names to sink blocks")
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		name, block := n.Content[i].Value, n.Content[i+1]
		if block.Kind != yaml.MappingNode {
			continue
		}
		j := findKey(block, "type", false)
		if j < 0 {
			continue
		}
		cfg, ok := sink.NewConfig(block.Content[j+1].Value)
		if !ok {
			continue
		}
		t := reflect.TypeOf(cfg)
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		// Check the block without its type key, which belongs to the loader.
		rest := &yaml.Node{Kind: yaml.MappingNode, Content: slices.Concat(block.Content[:j], block.Content[j+2:])}
		c.mapping(rest, t, "sinks."+name)
		block.Content = slices.Concat(block.Content[j:j+2], rest.Content)
	}
}
