package config

import (
	"bytes"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Redacted stands in for a secret in YAML's output.
const Redacted = "<redacted>"

// secretKeys are the config keys whose values YAML never prints ([] marks
// every element of a list).
var secretKeys = map[string]bool{
	"ingest.write_keys[].key": true,
	"admin.token":             true,
	"dashboard.token":         true,
	"clickhouse.password":     true,
}

// YAML renders c in the shape of telemetry.example.yaml: the keys of the
// struct tree in its order, durations as "30s", and every secret (write
// keys, the admin and staff tokens, the ClickHouse password) replaced by Redacted.
// Load reads the output back.
func YAML(c Config) ([]byte, error) {
	node, err := yamlNode("", reflect.ValueOf(c))
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(node); err != nil {
		return nil, fmt.Errorf("rendering the config as YAML: %w", err)
	}
	return b.Bytes(), enc.Close()
}

var durationType = reflect.TypeOf(time.Duration(0))

// yamlNode renders v, found at key path, as a YAML node.
func yamlNode(path string, v reflect.Value) (*yaml.Node, error) {
	scalar := func(tag, s string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: s} }
	if secretKeys[path] && !v.IsZero() {
		return scalar("!!str", Redacted), nil
	}
	switch {
	case v.Type() == durationType:
		return scalar("!!str", time.Duration(v.Int()).String()), nil
	case v.Kind() == reflect.Struct:
		m := &yaml.Node{Kind: yaml.MappingNode}
		if err := appendFields(m, path, v); err != nil {
			return nil, err
		}
		return m, nil
	case v.Kind() == reflect.Slice:
		seq := &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle}
		for i := 0; i < v.Len(); i++ {
			el, err := yamlNode(path+"[]", v.Index(i))
			if err != nil {
				return nil, err
			}
			if el.Kind != yaml.ScalarNode {
				seq.Style = 0
			}
			seq.Content = append(seq.Content, el)
		}
		return seq, nil
	case v.Kind() == reflect.Map:
		m := &yaml.Node{Kind: yaml.MappingNode}
		keys := v.MapKeys()
		strs := make([]string, len(keys))
		order := make([]int, len(keys))
		for i, k := range keys {
			strs[i], order[i] = fmt.Sprint(k.Interface()), i
		}
		sort.Slice(order, func(a, b int) bool { return strs[order[a]] < strs[order[b]] })
		for _, i := range order {
			el, err := yamlNode(path+"."+strs[i], v.MapIndex(keys[i]))
			if err != nil {
				return nil, err
			}
			m.Content = append(m.Content, scalar("!!str", strs[i]), el)
		}
		return m, nil
	case v.Kind() == reflect.String:
		return scalar("!!str", v.String()), nil
	case v.Kind() == reflect.Bool:
		return scalar("!!bool", strconv.FormatBool(v.Bool())), nil
	case v.CanInt():
		return scalar("!!int", strconv.FormatInt(v.Int(), 10)), nil
	case v.CanUint():
		return scalar("!!int", strconv.FormatUint(v.Uint(), 10)), nil
	case v.CanFloat():
		return scalar("", strconv.FormatFloat(v.Float(), 'f', -1, 64)), nil
	}
	return nil, fmt.Errorf("config key %s: cannot render a %s", path, v.Type())
}

// appendFields adds the fields of struct v to mapping m, by their
// mapstructure names; squashed (embedded) structs add theirs inline.
func appendFields(m *yaml.Node, path string, v reflect.Value) error {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("mapstructure"), ",")
		if name == "-" {
			continue
		}
		if opts == "squash" {
			if err := appendFields(m, path, v.Field(i)); err != nil {
				return err
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		key := name
		if path != "" {
			key = path + "." + name
		}
		el, err := yamlNode(key, v.Field(i))
		if err != nil {
			return err
		}
		m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: name}, el)
	}
	return nil
}
