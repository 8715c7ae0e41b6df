package bus

import (
	"slices"
	"testing"
)

// The hollow user is a kubelet for every node name, with its own inbox:
// not another user's, and no literal "kubelet-*" left over.
func TestHollowPermissions(t *testing.T) {
	p, err := Permissions(UserHollow)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"$KV." + BucketNodes + ".*", NodeAPISubject("*", "*"), NodeSubject(SubjNodeHeartbeat, "*"), InboxPrefix(UserHollow) + ".>"} {
		if !slices.Contains(p.Publish.Allow, want) {
			t.Errorf("hollow may not publish %s: %v", want, p.Publish.Allow)
		}
	}
	for _, want := range []string{"kubelet.*.logs", InboxPrefix(UserHollow) + ".>"} {
		if !slices.Contains(p.Subscribe.Allow, want) {
			t.Errorf("hollow may not subscribe %s: %v", want, p.Subscribe.Allow)
		}
	}
	for _, l := range [][]string{p.Publish.Allow, p.Subscribe.Allow} {
		if slices.Contains(l, InboxPrefix(KubeletUser("*"))+".>") {
			t.Errorf("hollow keeps the kubelet inbox pattern: %v", l)
		}
	}
	if !slices.Contains(p.Publish.Deny, SubjPodAssigned+".>") {
		t.Errorf("hollow may publish assignments: deny %v", p.Publish.Deny)
	}
	// A real kubelet's permissions are unchanged by the hollow user's.
	k, _ := Permissions(KubeletUser("n1"))
	if !slices.Contains(k.Publish.Allow, InboxPrefix(KubeletUser("n1"))+".>") || slices.Contains(k.Publish.Allow, "$KV."+BucketNodes+".*") {
		t.Errorf("kubelet n1 permissions changed: %v", k.Publish.Allow)
	}
}
