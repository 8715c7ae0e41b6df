package schemas

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestValidateName(t *testing.T) {
	good := []string{"a", "web", "web-1", "0abc", strings.Repeat("a", 63)}
	bad := []string{"", "-a", "a-", "A", "a_b", "a.b", "..", ".", "a/b", "a b", "é", "a\x00", strings.Repeat("a", 64)}
	for _, n := range good {
		if err := ValidateName("name", n, MaxNameLength); err != nil {
			t.Errorf("%q: %v", n, err)
		}
	}
	for _, n := range bad {
		err := ValidateName("name", n, MaxNameLength)
		if err == nil {
			t.Errorf("%q accepted", n)
			continue
		}
		if !strings.HasPrefix(err.Error(), "name: ") {
			t.Errorf("%q: error %q does not name the field", n, err)
		}
	}
}

func validRS() *ReplicaSet {
	return &ReplicaSet{
		ObjectMeta:   ObjectMeta{Name: "test"},
		DesiredCount: 4,
		Selector:     map[string]string{"app": "test"},
		Template:     PodTemplate{PodSpec: PodSpec{Image: "alpine", Command: []string{"/bin/sh", "-c", "true"}}},
	}
}

func TestReplicaSetValidate(t *testing.T) {
	if err := validRS().Validate(); err != nil {
		t.Fatalf("valid replicaset refused: %v", err)
	}
	cases := map[string]func(*ReplicaSet){
		"desiredCount":                           func(r *ReplicaSet) { r.DesiredCount = -1 },
		"selector":                               func(r *ReplicaSet) { r.Selector = nil },
		"template.image":                         func(r *ReplicaSet) { r.Template.Image = "UPPER/../x:tag" },
		"template.command":                       func(r *ReplicaSet) { r.Template.Command = []string{} },
		"template.labels":                        func(r *ReplicaSet) { r.Template.Labels = map[string]string{"app": "other"} },
		"name":                                   func(r *ReplicaSet) { r.Name = strings.Repeat("a", 55) },
		"template.terminationGracePeriodSeconds": func(r *ReplicaSet) { g := int64(-1); r.Template.TerminationGracePeriodSeconds = &g },
		// Kubernetes: a replicaset's pods must restart in place.
		"template.restartPolicy": func(r *ReplicaSet) { r.Template.RestartPolicy = RestartNever },
	}
	for _, ok := range []RestartPolicy{"", RestartAlways} {
		rs := validRS()
		rs.Template.RestartPolicy = ok
		if err := rs.Validate(); err != nil {
			t.Errorf("restartPolicy %q refused: %v", ok, err)
		}
	}
	onFailure := validRS()
	onFailure.Template.RestartPolicy = RestartOnFailure
	if err := onFailure.Validate(); err == nil || !strings.Contains(err.Error(), "template.restartPolicy: must be Always") {
		t.Errorf("restartPolicy OnFailure: got %v, want refused", err)
	}
	for field, mutate := range cases {
		rs := validRS()
		mutate(rs)
		err := rs.Validate()
		if err == nil || !strings.Contains(err.Error(), field+":") {
			t.Errorf("%s: got %v, want an error naming the field", field, err)
		}
	}
	big := validRS()
	big.DesiredCount = MaxDesiredCount + 1
	if err := big.Validate(); err == nil {
		t.Error("huge desiredCount accepted")
	}
}

func TestPodValidate(t *testing.T) {
	p := &Pod{ObjectMeta: ObjectMeta{Name: "p"}, PodSpec: PodSpec{Image: "registry.example:5000/team/app@sha256:" + strings.Repeat("a", 64)}}
	if err := p.Validate(); err != nil {
		t.Fatalf("valid pod refused: %v", err)
	}
	for _, img := range []string{"", "a b", "UPPER", "x:tag:tag", "../etc/passwd"} {
		p.Image = img
		if err := p.Validate(); err == nil || !strings.Contains(err.Error(), "image:") {
			t.Errorf("image %q: got %v", img, err)
		}
	}
	p.Image = "alpine"
	p.Command = []string{"sh", "a\x00b"}
	if err := p.Validate(); err == nil || !strings.Contains(err.Error(), "command[1]") {
		t.Errorf("NUL in command: %v", err)
	}
}

func TestLabels(t *testing.T) {
	if err := ValidateLabels("labels", map[string]string{"app": "x", "example.com/tier": "front-end", "empty": ""}); err != nil {
		t.Fatal(err)
	}
	for _, l := range []map[string]string{{"": "x"}, {"a b": "x"}, {"a": "x y"}, {"a": strings.Repeat("v", 64)}, {"/a": "x"}} {
		if err := ValidateLabels("labels", l); err == nil {
			t.Errorf("%v accepted", l)
		}
	}
	if SelectorMatches(nil, map[string]string{"a": "b"}) {
		t.Error("empty selector must match nothing")
	}
	if !SelectorMatches(map[string]string{"a": "b"}, map[string]string{"a": "b", "c": "d"}) {
		t.Error("subset selector must match")
	}
}

func TestCodecRoundTrip(t *testing.T) {
	g := int64(5)
	code := 3
	now := time.Now().UTC().Truncate(time.Microsecond)
	in := &Pod{
		ObjectMeta: ObjectMeta{Name: "p", UID: "u", CreatedAt: now, Labels: map[string]string{"a": "b"}, ResourceVersion: 9},
		PodSpec:    PodSpec{Image: "alpine", Command: []string{"sh"}, TerminationGracePeriodSeconds: &g},
		Status:     PodFailed, ExitCode: &code, FinishedAt: &now, NodeName: "n",
	}
	data, err := Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var out Pod
	if err := Unmarshal(data, &out); err != nil {
		t.Fatal(err)
	}
	if out.Name != "p" || !out.CreatedAt.Equal(now) || *out.ExitCode != 3 || *out.TerminationGracePeriodSeconds != 5 || out.Labels["a"] != "b" || out.NodeName != "n" {
		t.Fatalf("round trip lost data: %+v", out)
	}
	if err := Unmarshal([]byte{0xc1}, &out); err == nil {
		t.Fatal("garbage decoded without error")
	}
}

func TestQuantities(t *testing.T) {
	cpu := map[string]int64{"500m": 500, "1": 1000, "1.5": 1500, "0.1": 100, "2k": 2_000_000, "1m": 1}
	for s, want := range cpu {
		if got, err := ParseCPU(s); err != nil || got != want {
			t.Errorf("ParseCPU(%q) = %d, %v; want %d", s, got, err, want)
		}
	}
	mem := map[string]int64{"64Mi": 64 << 20, "1Gi": 1 << 30, "1G": 1e9, "100": 100, "1.5Ki": 1536, "1k": 1000}
	for s, want := range mem {
		if got, err := ParseMemory(s); err != nil || got != want {
			t.Errorf("ParseMemory(%q) = %d, %v; want %d", s, got, err, want)
		}
	}
	for _, s := range []string{"", "-1", "1e9", "abc", "1.2.3", "Mi", ".", " 1", "1 Mi", "99999999999999999999Ei", "1mi"} {
		if _, err := ParseMemory(s); err == nil {
			t.Errorf("ParseMemory(%q) accepted", s)
		}
	}
	if FormatCPU(1500) != "1500m" || FormatCPU(2000) != "2" || FormatMemory(64<<20) != "64Mi" {
		t.Error("format")
	}
}

func FuzzParseQuantity(f *testing.F) {
	for _, s := range []string{"500m", "64Mi", "1.5", "1e3", "-1", "99999999999999999999Ei"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if v, err := ParseMemory(s); err == nil && v < 0 {
			t.Fatalf("ParseMemory(%q) = %d", s, v)
		}
		if v, err := ParseCPU(s); err == nil && v < 0 {
			t.Fatalf("ParseCPU(%q) = %d", s, v)
		}
	})
}

// A nil where a time is expected made msgpack panic inside every reader of
// the nodes bucket; it must be a plain decode error.
func TestUnmarshalNilTimeIsError(t *testing.T) {
	data := []byte("\x81\xadlastHeartbeat\xc0")
	var n Node
	if err := Unmarshal(data, &n); err == nil {
		t.Fatal("decoding a nil lastHeartbeat succeeded; want an error")
	}
	// The pool must still hand out working decoders afterwards.
	ok, err := Marshal(Node{ObjectMeta: ObjectMeta{Name: "n"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := Unmarshal(ok, &n); err != nil || n.Name != "n" {
		t.Fatalf("decode after a malformed input: %v (name %q)", err, n.Name)
	}
}

func TestEventsCodec(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	one := []ObjectEvent{{Time: now, Type: EventNormal, Reason: "Scheduled", Kind: KindPod, Name: "p"}}
	three := []ObjectEvent{one[0], one[0], one[0]}
	three[1].Reason, three[2].Reason = "Created", "Started"
	for _, evs := range [][]ObjectEvent{one, three} {
		data, err := MarshalEvents(evs)
		if err != nil {
			t.Fatal(err)
		}
		got, err := UnmarshalEvents(data)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(evs) {
			t.Fatalf("%d events back, want %d", len(got), len(evs))
		}
		for i := range evs {
			if got[i].Reason != evs[i].Reason || !got[i].Time.Equal(evs[i].Time) || got[i].Name != "p" {
				t.Fatalf("event %d: %+v, want %+v", i, got[i], evs[i])
			}
		}
	}
	// A single event is written as it always was: readers of older
	// messages and of new ones decode both.
	single, _ := Marshal(&one[0])
	if data, _ := MarshalEvents(one); !bytes.Equal(data, single) {
		t.Fatal("one event is not encoded as a plain ObjectEvent")
	}
	if _, err := UnmarshalEvents([]byte{0x92, 0xc1}); err == nil {
		t.Fatal("malformed array decoded")
	}
}
