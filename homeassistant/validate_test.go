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

// deviceKeys and originKeys are the keys Home Assistant allows in the
// device and origin maps; all tutti uses are strings.
var (
	deviceKeys = []string{
		"identifiers", "connections", "name", "manufacturer", "model", "model_id",
		"hw_version", "sw_version", "serial_number", "suggested_area", "via_device", "configuration_url",
	}
	originKeys = []string{"name", "sw_version", "support_url"}
)

// deviceClasses lists, per platform, the device classes the validator knows
// (those tutti uses, and a few neighbours) with the units Home Assistant
// accepts for each; nil means no unit at all.
var deviceClasses = map[string]map[string][]string{
	"sensor": {
		"duration": {"d", "h", "min", "s", "ms"},
		"enum":     nil,
	},
	"binary_sensor": {"connectivity": nil, "problem": nil},
	"button":        {"identify": nil, "restart": nil, "update": nil},
	"switch":        {"outlet": nil, "switch": nil},
}

// stateClasses are a sensor's state classes; enum sensors take none.
var stateClasses = []string{"measurement", "total", "total_increasing"}

// nonNumericSensors are the sensor device classes whose state is not a
// number; any other device class, a unit, a state class or a display
// precision makes Home Assistant expect a number.
var nonNumericSensors = []string{"enum", "date", "timestamp"}

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
	if err := validateStrings("device", device, deviceKeys, "identifiers"); err != nil {
		return err
	}
	orig, ok := root["origin"].(map[string]any)
	if name, _ := orig["name"].(string); !ok || name == "" {
		return fmt.Errorf("origin with a name is required")
	}
	if err := validateStrings("origin", orig, originKeys); err != nil {
		return err
	}
	if err := validateQoS(root); err != nil {
		return fmt.Errorf("root: %w", err)
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
	if err := validateQoS(c); err != nil {
		return err
	}
	if err := validateUnit(platform, c); err != nil {
		return err
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
		}
		if err := validateSensorNumbers(c); err != nil {
			return err
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
	// Jinja renders a JSON null as "None", which Home Assistant's MQTT
	// entities take as unknown (sensors of any kind since 2024.10).
	text := fmt.Sprint(value)
	if value == nil {
		text = payloadNone
	}
	switch platform {
	case "sensor":
		if utf8.RuneCountInString(text) > maxState {
			return fmt.Errorf("sensor state of %d characters exceeds %d", utf8.RuneCountInString(text), maxState)
		}
		if text == payloadNone {
			break
		}
		if c["device_class"] == "enum" && !slices.Contains(anyStrings(c["options"]), text) {
			return fmt.Errorf("enum state %q is not an option", text)
		}
		if _, isNumber := value.(float64); numericSensor(c) && !isNumber {
			return fmt.Errorf("sensor state %q is not a number, but the sensor expects one", text)
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

// payloadNone is what Home Assistant's MQTT entities take as "unknown".
const payloadNone = "None"

// validateStrings checks that m holds only the allowed keys, each a
// non-empty string, except the list keys.
func validateStrings(what string, m map[string]any, allowed []string, lists ...string) error {
	for key, v := range m {
		if !slices.Contains(allowed, key) {
			return fmt.Errorf("%s key %q is not allowed", what, key)
		}
		if slices.Contains(lists, key) {
			continue
		}
		if s, ok := v.(string); !ok || s == "" {
			return fmt.Errorf("%s %s is %v, want a non-empty string", what, key, v)
		}
	}
	return nil
}

// validateQoS checks a qos option, if there is one: 0, 1 or 2.
func validateQoS(m map[string]any) error {
	v, ok := m["qos"]
	if !ok {
		return nil
	}
	if q, ok := v.(float64); !ok || (q != 0 && q != 1 && q != 2) {
		return fmt.Errorf("qos %v", v)
	}
	return nil
}

// validateUnit checks the device class and unit: a known class of the
// platform, with a unit that class accepts.
func validateUnit(platform string, c map[string]any) error {
	unit, hasUnit := c["unit_of_measurement"]
	if hasUnit {
		if s, ok := unit.(string); !ok || s == "" {
			return fmt.Errorf("unit_of_measurement %v", unit)
		}
		if platform != "sensor" && platform != "number" {
			return fmt.Errorf("a %s has no unit_of_measurement", platform)
		}
	}
	class, ok := c["device_class"]
	if !ok {
		return nil
	}
	units, known := deviceClasses[platform][fmt.Sprint(class)]
	if !known {
		return fmt.Errorf("device_class %v is not one the validator knows for %s", class, platform)
	}
	if units == nil && hasUnit {
		return fmt.Errorf("device_class %v takes no unit", class)
	}
	if units != nil && !slices.Contains(units, fmt.Sprint(unit)) {
		return fmt.Errorf("device_class %v takes a unit of %v, not %v", class, units, unit)
	}
	return nil
}

// validateSensorNumbers checks the options of numeric sensors: state class
// and display precision.
func validateSensorNumbers(c map[string]any) error {
	if class, ok := c["state_class"]; ok {
		if !slices.Contains(stateClasses, fmt.Sprint(class)) {
			return fmt.Errorf("state_class %v", class)
		}
		if slices.Contains(nonNumericSensors, fmt.Sprint(c["device_class"])) {
			return fmt.Errorf("state_class %v on a %v sensor", class, c["device_class"])
		}
	}
	if p, ok := c["suggested_display_precision"]; ok {
		if f, ok := p.(float64); !ok || f < 0 || f != float64(int(f)) {
			return fmt.Errorf("suggested_display_precision %v is not a whole number >= 0", p)
		}
		if slices.Contains(nonNumericSensors, fmt.Sprint(c["device_class"])) {
			return fmt.Errorf("suggested_display_precision on a %v sensor", c["device_class"])
		}
	}
	return nil
}

// numericSensor says whether Home Assistant expects the sensor's state to
// be a number.
func numericSensor(c map[string]any) bool {
	class, hasClass := c["device_class"]
	if hasClass && slices.Contains(nonNumericSensors, fmt.Sprint(class)) {
		return false
	}
	for _, key := range []string{"state_class", "unit_of_measurement", "suggested_display_precision"} {
		if _, ok := c[key]; ok {
			return true
		}
	}
	return hasClass
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
