package homeassistant

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"
)

// This file encodes Home Assistant's rules for device-based discovery
// payloads (https://www.home-assistant.io/integrations/mqtt/, "Device
// discovery payload") and for the platforms tutti uses (the pages
// https://www.home-assistant.io/integrations/<platform>.mqtt/). It checks
// the marshalled JSON, as Home Assistant sees it.

// rootKeys are the keys Home Assistant allows at the root of a device
// discovery payload: device and origin (both required), the availability
// options, components, and the options components may share.
var rootKeys = []string{
	"device", "origin", "components",
	"availability", "availability_mode", "availability_template", "availability_topic",
	"payload_available", "payload_not_available",
	"state_topic", "command_topic", "qos", "encoding",
}

// requiredKeys lists, per platform, the options Home Assistant refuses a
// component without.
var requiredKeys = map[string][]string{
	"binary_sensor": {"state_topic"},
	"button":        {"command_topic"},
	"number":        {"command_topic"},
	"select":        {"command_topic", "options"},
	"sensor":        {"state_topic"},
	"switch":        {"command_topic"},
	"notify":        {"command_topic"},
	"image":         {}, // url_topic or image_topic, checked below
}

var (
	objectIDPattern  = regexp.MustCompile(`^[a-zA-Z0-9_-]+$`)
	templateField    = regexp.MustCompile(`^\{\{ value_json\.([a-z_]+) \}\}$`)
	entityCategories = []string{"config", "diagnostic"}
)

// validateDiscovery checks a discovery payload published on topic, and, when
// state is not nil, the sensor states the device's state payload gives.
func validateDiscovery(prefix, topic string, payload []byte, state []byte) error {
	rest, ok := strings.CutPrefix(topic, prefix+"/device/")
	objectID, ok2 := strings.CutSuffix(rest, "/config")
	if !ok || !ok2 || !objectIDPattern.MatchString(objectID) {
		return fmt.Errorf("topic %q is not %s/device/<object_id>/config", topic, prefix)
	}
	var root map[string]any
	if err := json.Unmarshal(payload, &root); err != nil {
		return fmt.Errorf("payload is not a JSON object: %w", err)
	}
	for key := range root {
		if !slices.Contains(rootKeys, key) {
			return fmt.Errorf("root key %q is not allowed in device discovery", key)
		}
	}
	device, ok := root["device"].(map[string]any)
	if !ok {
		return fmt.Errorf("missing device")
	}
	ids, _ := device["identifiers"].([]any)
	if len(ids) == 0 {
		return fmt.Errorf("device has no identifiers")
	}
	if name, _ := device["name"].(string); name == "" {
		return fmt.Errorf("device has no name")
	}
	orig, ok := root["origin"].(map[string]any)
	if name, _ := orig["name"].(string); !ok || name == "" {
		return fmt.Errorf("origin with a name is required")
	}
	if err := validateAvailability(root); err != nil {
		return fmt.Errorf("root: %w", err)
	}
	components, ok := root["components"].(map[string]any)
	if !ok || len(components) == 0 {
		return fmt.Errorf("no components")
	}
	var stateFields map[string]any
	if state != nil {
		if err := json.Unmarshal(state, &stateFields); err != nil {
			return fmt.Errorf("state is not a JSON object: %w", err)
		}
	}
	uniqueIDs := map[string]bool{}
	for key, raw := range components {
		c, ok := raw.(map[string]any)
		if !ok {
			return fmt.Errorf("component %q is not an object", key)
		}
		if err := validateComponent(c, stateFields); err != nil {
			return fmt.Errorf("component %q: %w", key, err)
		}
		id := c["unique_id"].(string)
		if uniqueIDs[id] {
			return fmt.Errorf("component %q: unique_id %q used twice", key, id)
		}
		uniqueIDs[id] = true
	}
	return nil
}

func validateComponent(c map[string]any, state map[string]any) error {
	platform, _ := c["platform"].(string)
	required, known := requiredKeys[platform]
	if !known {
		return fmt.Errorf("platform %q missing or not one tutti uses", platform)
	}
	if id, _ := c["unique_id"].(string); id == "" {
		return fmt.Errorf("no unique_id")
	}
	for _, key := range required {
		if isEmpty(c[key]) {
			return fmt.Errorf("%s needs %s", platform, key)
		}
	}
	for key, value := range c {
		if !strings.HasSuffix(key, "topic") {
			continue
		}
		topic, _ := value.(string)
		if topic == "" || strings.HasPrefix(topic, "~") || strings.HasSuffix(topic, "~") {
			return fmt.Errorf("%s %q is empty or uses ~", key, topic)
		}
		if key == "command_topic" && strings.ContainsAny(topic, "+#") {
			return fmt.Errorf("command_topic %q holds an MQTT wildcard", topic)
		}
	}
	if category, ok := c["entity_category"]; ok && !slices.Contains(entityCategories, category.(string)) {
		return fmt.Errorf("entity_category %q", category)
	}
	if _, ok := c["availability"]; ok {
		if err := validateAvailability(c); err != nil {
			return err
		}
	}
	switch platform {
	case "image":
		_, url := c["url_topic"]
		_, image := c["image_topic"]
		if url == image {
			return fmt.Errorf("image needs exactly one of url_topic and image_topic")
		}
	case "number":
		if mode, ok := c["mode"]; ok && !slices.Contains([]string{"auto", "box", "slider"}, mode.(string)) {
			return fmt.Errorf("number mode %q", mode)
		}
		if lo, hi := c["min"], c["max"]; lo == nil || hi == nil || lo.(float64) >= hi.(float64) {
			return fmt.Errorf("number needs min < max, got %v, %v", lo, hi)
		}
	case "select":
		if err := validateOptions(c["options"]); err != nil {
			return err
		}
	case "sensor":
		if c["device_class"] == "enum" {
			if err := validateOptions(c["options"]); err != nil {
				return fmt.Errorf("enum sensor: %w", err)
			}
			if _, ok := c["unit_of_measurement"]; ok {
				return fmt.Errorf("enum sensor with a unit")
			}
		}
	}
	if state == nil || c["value_template"] == nil {
		return nil
	}
	m := templateField.FindStringSubmatch(c["value_template"].(string))
	if m == nil {
		return fmt.Errorf("value_template %q is not {{ value_json.<field> }}", c["value_template"])
	}
	value, ok := state[m[1]]
	if !ok {
		return fmt.Errorf("state lacks field %q", m[1])
	}
	text := fmt.Sprint(value)
	switch platform {
	case "sensor":
		if utf8.RuneCountInString(text) > maxState {
			return fmt.Errorf("sensor state of %d characters exceeds %d", utf8.RuneCountInString(text), maxState)
		}
		if c["device_class"] == "enum" && !slices.Contains(anyStrings(c["options"]), text) {
			return fmt.Errorf("enum state %q is not an option", text)
		}
	case "select":
		if text != noOption && !slices.Contains(anyStrings(c["options"]), text) {
			return fmt.Errorf("select state %q is not an option", text)
		}
	case "switch", "binary_sensor":
		if text != on && text != off {
			return fmt.Errorf("%s state %q is not ON or OFF", platform, text)
		}
	case "number":
		if _, ok := value.(float64); !ok {
			return fmt.Errorf("number state %v is not a number", value)
		}
	}
	return nil
}

// validateAvailability wants a list of topics, and availability mode "all":
// tutti's devices are available only while every topic says so.
func validateAvailability(m map[string]any) error {
	list, ok := m["availability"].([]any)
	if !ok || len(list) == 0 {
		return fmt.Errorf("availability must be a non-empty list")
	}
	if _, ok := m["availability_topic"]; ok {
		return fmt.Errorf("availability and availability_topic together")
	}
	for _, raw := range list {
		a, _ := raw.(map[string]any)
		topic, _ := a["topic"].(string)
		if topic == "" || strings.ContainsAny(topic, "+#") {
			return fmt.Errorf("availability topic %q", topic)
		}
	}
	if m["availability_mode"] != "all" {
		return fmt.Errorf("availability_mode %v, want all", m["availability_mode"])
	}
	return nil
}

func validateOptions(raw any) error {
	options := anyStrings(raw)
	if len(options) == 0 {
		return fmt.Errorf("no options")
	}
	seen := map[string]bool{}
	for _, o := range options {
		if o == "" || seen[o] {
			return fmt.Errorf("option %q empty or repeated", o)
		}
		seen[o] = true
	}
	return nil
}

func anyStrings(raw any) []string {
	list, _ := raw.([]any)
	var out []string
	for _, v := range list {
		s, _ := v.(string)
		out = append(out, s)
	}
	return out
}

func isEmpty(v any) bool {
	switch v := v.(type) {
	case nil:
		return true
	case string:
		return v == ""
	case []any:
		return len(v) == 0
	}
	return false
}
