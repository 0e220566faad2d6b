package config

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// EnvPrefix starts every environment override. A variable is an override when the rest
// of its name holds at least one double underscore, which separates the levels:
// CONVEYOR_SINKS__MAIN__URL sets sinks.main.url, CONVEYOR_RELAY__BATCH_SIZE sets
// relay.batch_size, CONVEYOR_ROUTES__0__DESTINATION sets routes[0].destination. Names are
// lowercased; other CONVEYOR_* variables (no double underscore) are left alone.
const EnvPrefix = "CONVEYOR_"

// LoadFiles builds the configuration in layers:
//
//  1. the files, deep-merged in order: a later file's mappings merge into the earlier
//     ones key by key, while its scalars and lists replace the earlier values (a null
//     resets a key to its default). With no files the base is DefaultYAML, the embedded
//     setup;
//  2. the CONVEYOR_*__* overrides from environ (see EnvPrefix);
//  3. ${VAR} and ${VAR:-default} interpolation, from environ;
//  4. FIELD_file secrets, strict keys with did-you-mean hints, units, defaults and
//     validation.
//
// A nil environ means os.Environ(). Errors name the field path and where it was set.
func LoadFiles(files []string, environ []string) (*Config, error) {
	if environ == nil {
		environ = os.Environ()
	}
	org := origins{}
	var root *yaml.Node
	sources := files
	if len(files) == 0 {
		n, err := parseDoc([]byte(DefaultYAML))
		if err != nil {
			return nil, fmt.Errorf("config: default: %w", err)
		}
		org.record(n, "the embedded default")
		root = n
		sources = []string{"the embedded default"}
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		n, err := parseDoc(b)
		if err != nil {
			return nil, fmt.Errorf("config %s: %w", f, err)
		}
		if n == nil {
			continue // an empty file adds nothing
		}
		if n.Kind != yaml.MappingNode {
			return nil, fmt.Errorf("config %s: the top level must be a mapping (key: value lines)", f)
		}
		org.record(n, f)
		root = mergeNodes(root, n)
	}
	if root == nil {
		root = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	}
	overrides, err := applyEnv(root, environ, org)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c, err := fromNode(&yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{root}}, lookupIn(environ), org)
	if err != nil {
		what := strings.Join(sources, " + ")
		if len(overrides) > 0 {
			what += " + environment"
		}
		return nil, fmt.Errorf("config (%s): %w", what, err)
	}
	return c, nil
}

// parseDoc parses one YAML document and returns its top node, nil when empty.
func parseDoc(b []byte) (*yaml.Node, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, err
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil, nil
	}
	return doc.Content[0], nil
}

// mergeNodes merges src into dst: mappings key by key, everything else replaced.
func mergeNodes(dst, src *yaml.Node) *yaml.Node {
	if dst == nil {
		return src
	}
	if dst.Kind != yaml.MappingNode || src.Kind != yaml.MappingNode {
		return src
	}
	for i := 0; i+1 < len(src.Content); i += 2 {
		k, v := src.Content[i], src.Content[i+1]
		if j := findKey(dst, k.Value, false); j >= 0 {
			dst.Content[j+1] = mergeNodes(dst.Content[j+1], v)
			continue
		}
		dst.Content = append(dst.Content, k, v)
	}
	return dst
}

// findKey returns the index of key in a mapping node, or -1.
func findKey(m *yaml.Node, key string, fold bool) int {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if k := m.Content[i].Value; k == key || (fold && strings.EqualFold(k, key)) {
			return i
		}
	}
	return -1
}

// applyEnv applies the CONVEYOR_*__* overrides in name order and returns their names.
func applyEnv(root *yaml.Node, environ []string, org origins) ([]string, error) {
	vals := map[string]string{}
	var names []string
	for _, kv := range environ {
		name, val, ok := strings.Cut(kv, "=")
		rest, isOurs := strings.CutPrefix(name, EnvPrefix)
		if !ok || !isOurs || !strings.Contains(rest, "__") {
			continue
		}
		if _, dup := vals[name]; !dup {
			names = append(names, name)
		}
		vals[name] = val
	}
	slices.Sort(names)
	for _, name := range names {
		path := strings.Split(strings.ToLower(strings.TrimPrefix(name, EnvPrefix)), "__")
		if slices.Contains(path, "") {
			return nil, fmt.Errorf("%s: empty name between double underscores; write CONVEYOR_SECTION__KEY", name)
		}
		val := &yaml.Node{Kind: yaml.ScalarNode, Value: vals[name]}
		if err := setPath(root, path, val, name, org); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		org.record(val, "$"+name)
	}
	return names, nil
}

// setPath sets root.path[0].path[1]... to val, creating mappings on the way. A segment
// that is a number indexes an existing list.
func setPath(n *yaml.Node, path []string, val *yaml.Node, name string, org origins) error {
	for i, seg := range path {
		last := i == len(path)-1
		at := strings.Join(path[:i+1], ".")
		switch n.Kind {
		case yaml.MappingNode:
			j := findKey(n, seg, true)
			if j < 0 {
				k := &yaml.Node{Kind: yaml.ScalarNode, Value: seg}
				var child *yaml.Node
				if last {
					child = val
				} else {
					child = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
				}
				n.Content = append(n.Content, k, child)
				org.record(k, "$"+name)
				n = child
				continue
			}
			if last {
				n.Content[j+1] = val
				return nil
			}
			if isNull(n.Content[j+1]) {
				n.Content[j+1] = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
			}
			n = n.Content[j+1]
		case yaml.SequenceNode:
			idx, err := strconv.Atoi(seg)
			if err != nil || idx < 0 || idx >= len(n.Content) {
				return fmt.Errorf("%s is a list of %d entries; address an entry by its index, like %s__0__…",
					strings.Join(path[:i], "."), len(n.Content), strings.ToUpper(strings.Join(path[:i], "__")))
			}
			if last {
				n.Content[idx] = val
				return nil
			}
			n = n.Content[idx]
		default:
			return fmt.Errorf("cannot set %s: %s is a single value, not a mapping", at, strings.Join(path[:i], "."))
		}
	}
	return nil
}

func lookupIn(environ []string) func(string) (string, bool) {
	m := make(map[string]string, len(environ))
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}
