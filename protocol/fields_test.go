package protocol

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// envelopeFields are the Request fields every command takes.
var envelopeFields = []string{"v", "cmd", "req_id", "reply_to"}

// TestRequestFieldsCoverRequest: each optional field of Request, set alone,
// is seen as present under its JSON name and as no other, so a field added
// to Request cannot slip past CheckFields.
func TestRequestFieldsCoverRequest(t *testing.T) {
	typ := reflect.TypeFor[Request]()
	var names []string
	for i := range typ.NumField() {
		name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
		if slices.Contains(envelopeFields, name) {
			continue
		}
		names = append(names, name)
		var req Request
		field := reflect.ValueOf(&req).Elem().Field(i)
		switch field.Kind() {
		case reflect.Pointer:
			field.Set(reflect.New(field.Type().Elem()))
		case reflect.String:
			field.SetString("x")
		case reflect.Int:
			field.SetInt(1)
		default:
			t.Fatalf("field %s: kind %v not covered by this test", name, field.Kind())
		}
		for _, f := range requestFields {
			if got, want := f.present(req), f.name == name; got != want {
				t.Errorf("with only %s set, %s present = %v", name, f.name, got)
			}
		}
	}
	var known []string
	for _, f := range requestFields {
		known = append(known, f.name)
	}
	if !slices.Equal(names, known) {
		t.Errorf("Request's optional fields %v, requestFields %v", names, known)
	}
}

// TestCommandFieldsCoverCommands: every command some topic takes has a
// rule, every rule is for such a command, and a rule needs only fields it
// takes.
func TestCommandFieldsCoverCommands(t *testing.T) {
	all := slices.Concat(SessionCommands, LibraryCommands, SessionsCommands, SpeakerCommands)
	for _, cmd := range all {
		if _, ok := commandFields[cmd]; !ok {
			t.Errorf("command %q has no field rule", cmd)
		}
	}
	for cmd, rule := range commandFields {
		if !slices.Contains(all, cmd) {
			t.Errorf("field rule for %q, which no topic takes", cmd)
		}
		for _, name := range rule.takes {
			if !slices.ContainsFunc(requestFields, func(f requestField) bool { return f.name == name }) {
				t.Errorf("%s takes %q, not a request field", cmd, name)
			}
		}
		for _, group := range rule.needs {
			for _, name := range group {
				if !slices.Contains(rule.takes, name) {
					t.Errorf("%s needs %q but does not take it", cmd, name)
				}
			}
		}
	}
}

func TestCheckFields(t *testing.T) {
	index, volume, ms := 1, 40, 12.5
	position := Position(3e9)
	for _, c := range []struct {
		req  Request
		want string // "" for accepted
	}{
		{Request{Cmd: CmdPlay}, ""},
		{Request{Cmd: CmdPlay, Index: &index, Position: &position, ReqID: "r", ReplyTo: "tutti/reply/x", V: 1}, ""},
		{Request{Cmd: CmdPause, Position: &position}, "pause takes no position"},
		{Request{Cmd: CmdSeek}, "seek needs position"},
		{Request{Cmd: CmdDequeue}, "dequeue needs entry or index"},
		{Request{Cmd: CmdDequeue, Entry: "e1", Index: &index}, "dequeue takes only one of entry or index"},
		{Request{Cmd: CmdDequeue, Entry: "e1"}, ""},
		{Request{Cmd: CmdVolume, Speaker: "k2"}, "volume needs volume"},
		{Request{Cmd: CmdVolume, Speaker: "k2", Volume: &volume}, ""},
		{Request{Cmd: CmdLeave, Speaker: "k2", Volume: &volume}, "leave takes no volume"},
		{Request{Cmd: CmdLoad, Song: "s", Path: "p"}, "load takes only one of song or path"},
		{Request{Cmd: CmdRename, Session: "garage"}, "rename needs title"},
		{Request{Cmd: CmdGrant, Session: "garage", ACL: &Everyone}, ""},
		{Request{Cmd: CmdList, Session: "home"}, "list takes no session"},
		{Request{Cmd: CmdAnnounce}, ""},
		{Request{Cmd: CmdIdentify, Volume: &volume}, "identify takes no volume"},
		{Request{Cmd: CmdCalibrate}, "calibrate needs calibration_ms"},
		{Request{Cmd: CmdCalibrate, CalibrationMs: &ms}, ""},
		{Request{Cmd: CmdStatus, CalibrationMs: &ms}, "status takes no calibration_ms"},
	} {
		err := CheckFields(c.req)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%+v: %v", c.req, err)
		case c.want != "" && (err == nil || err.Error() != c.want):
			t.Errorf("%+v: error %v, want %q", c.req, err, c.want)
		}
	}
	if err := CheckFields(Request{Cmd: "dance"}); !errors.Is(err, ErrUnknownCommand) {
		t.Errorf("unknown command: %v", err)
	}
}
