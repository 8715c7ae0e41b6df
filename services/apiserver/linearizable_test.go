package apiserver_test

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/miniku/miniku/bus/bustest"
)

// The linearizability check of the test 9, as etcd's robustness
// tests do it: clients record every call with its call and return times
// and outcome, and porcupine searches for an order of the operations,
// each taking effect at one instant within its interval, that a single
// register per key would have produced. A read served stale (a value
// older than one a write already acknowledged, or than one another read
// already returned) has no such order.

// regInput is one operation on one key: a read, or a compare-and-swap
// write of value, conditional on the key still holding expect (the value
// read with the resourceVersion the write sent; values are unique, so a
// value stands for its resourceVersion).
type regInput struct {
	key           string
	write         bool
	expect, value string
}

type regOutcome int

const (
	outOK       regOutcome = iota
	outConflict            // 409: the CAS failed, nothing written
	outUnknown             // 503, timeout, broken connection: a write may have been applied
)

type regOutput struct {
	outcome regOutcome
	value   string // a read's
}

// registerModel is one register per key; the state is the key's value
// ("" before it is created, which is a write expecting "").
var registerModel = (&porcupine.NondeterministicModel{
	Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
		by := map[string][]porcupine.Operation{}
		for _, op := range h {
			k := op.Input.(regInput).key
			by[k] = append(by[k], op)
		}
		var out [][]porcupine.Operation
		for _, k := range sortedKeys(by) {
			out = append(out, by[k])
		}
		return out
	},
	Init: func() []any { return []any{""} },
	Step: func(state, input, output any) []any {
		s, in, out := state.(string), input.(regInput), output.(regOutput)
		if !in.write {
			if out.value == s {
				return []any{s}
			}
			return nil
		}
		switch out.outcome {
		case outOK:
			if s == in.expect {
				return []any{in.value}
			}
			return nil
		case outConflict:
			if s != in.expect {
				return []any{s}
			}
			return nil
		}
		if s == in.expect { // unknown: applied or not
			return []any{s, in.value}
		}
		return []any{s}
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(regInput), output.(regOutput)
		if !in.write {
			return fmt.Sprintf("get(%s) -> %q", in.key, out.value)
		}
		return fmt.Sprintf("cas(%s, %q -> %q) -> %v", in.key, in.expect, in.value, out.outcome)
	},
}).ToModel()

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// history records operations from many clients.
type history struct {
	start time.Time
	mu    sync.Mutex
	ops   []porcupine.Operation
}

func (h *history) now() int64 { return time.Since(h.start).Nanoseconds() }

func (h *history) add(client int, in regInput, call int64, out regOutput) {
	ret := h.now()
	if out.outcome == outUnknown {
		// It may take effect at any time after its call, even after the
		// test (until the end of the history, which is all we check).
		ret = math.MaxInt64
	}
	h.mu.Lock()
	h.ops = append(h.ops, porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret})
	h.mu.Unlock()
}

// checkable drops the unknown writes whose value no read ever returned:
// the history ends with a successful read of every key, so a write that
// was applied is seen by it or by a read before the write that replaced
// it (which had to read it to expect it). Those that remain keep the
// search small (etcd's robustness tests do the same).
func checkable(ops []porcupine.Operation) []porcupine.Operation {
	seen := map[string]bool{}
	for _, op := range ops {
		if in := op.Input.(regInput); !in.write && op.Output.(regOutput).outcome == outOK {
			seen[in.key+"="+op.Output.(regOutput).value] = true
		}
	}
	var out []porcupine.Operation
	for _, op := range ops {
		in, o := op.Input.(regInput), op.Output.(regOutput)
		if in.write && o.outcome == outUnknown && !seen[in.key+"="+in.value] {
			continue
		}
		out = append(out, op)
	}
	return out
}

// checkLinearizable checks ops and, when they are not linearizable, logs
// per key the operations around where the longest linearizable prefix
// ends.
func checkLinearizable(t *testing.T, ops []porcupine.Operation) porcupine.CheckResult {
	t.Helper()
	res := porcupine.CheckOperationsTimeout(registerModel, ops, 30*time.Second)
	if res != porcupine.Illegal {
		return res
	}
	for _, part := range registerModel.Partition(ops) {
		r, info := porcupine.CheckOperationsVerbose(registerModel, part, 30*time.Second)
		if r != porcupine.Illegal {
			continue
		}
		var longest []porcupine.Operation
		for _, p := range info.PartialLinearizationsOperations() {
			for _, lin := range p {
				if len(lin) > len(longest) {
					longest = lin
				}
			}
		}
		var b strings.Builder
		fmt.Fprintf(&b, "key %s: %d of %d operations linearize; the last of them:", part[0].Input.(regInput).key, len(longest), len(part))
		for _, op := range longest[max(0, len(longest)-5):] {
			fmt.Fprintf(&b, "\n  [%s] %s", span(op), registerModel.DescribeOperation(op.Input, op.Output))
		}
		var after int64
		if len(longest) > 0 {
			after = longest[len(longest)-1].Call
		}
		b.WriteString("\n then, by call time:")
		sorted := append([]porcupine.Operation{}, part...)
		sort.Slice(sorted, func(i, j int) bool { return sorted[i].Call < sorted[j].Call })
		n := 0
		for _, op := range sorted {
			if op.Call >= after-int64(50*time.Millisecond) && n < 25 {
				fmt.Fprintf(&b, "\n  [%s] client %d %s", span(op), op.ClientId, registerModel.DescribeOperation(op.Input, op.Output))
				n++
			}
		}
		t.Log(b.String())
	}
	return res
}

func span(op porcupine.Operation) string {
	ret := "…"
	if op.Return != math.MaxInt64 {
		ret = time.Duration(op.Return).Round(time.Millisecond).String()
	}
	return time.Duration(op.Call).Round(time.Millisecond).String() + "–" + ret
}

// The checker itself catches a stale read: a read returning a value a
// write had already replaced (acknowledged before the read was sent).
func TestLinearizabilityCheckerCatchesStaleRead(t *testing.T) {
	op := func(in regInput, call, ret int64, out regOutput) porcupine.Operation {
		return porcupine.Operation{Input: in, Call: call, Return: ret, Output: out}
	}
	base := []porcupine.Operation{
		op(regInput{key: "k", write: true, expect: "", value: "a"}, 0, 1, regOutput{outcome: outOK}),
		op(regInput{key: "k", write: true, expect: "a", value: "b"}, 2, 3, regOutput{outcome: outOK}),
		// A write whose outcome is unknown and whose value nobody read:
		// dropped, and harmless.
		op(regInput{key: "k", write: true, expect: "b", value: "lost"}, 4, math.MaxInt64, regOutput{outcome: outUnknown}),
		op(regInput{key: "other", write: true, expect: "", value: "x"}, 0, 1, regOutput{outcome: outOK}),
	}
	fresh := append(append([]porcupine.Operation{}, base...), op(regInput{key: "k"}, 5, 6, regOutput{value: "b"}))
	if res := checkLinearizable(t, checkable(fresh)); res != porcupine.Ok {
		t.Fatalf("a fresh read: %v, want Ok", res)
	}
	// An unknown write seen by a read is kept, and explains it.
	applied := append(append([]porcupine.Operation{}, base...), op(regInput{key: "k"}, 5, 6, regOutput{value: "lost"}))
	if res := checkLinearizable(t, checkable(applied)); res != porcupine.Ok {
		t.Fatalf("a read of an unknown write: %v, want Ok", res)
	}
	stale := append(append([]porcupine.Operation{}, base...), op(regInput{key: "k"}, 5, 6, regOutput{value: "a"}))
	if res := checkLinearizable(t, checkable(stale)); res != porcupine.Illegal {
		t.Fatalf("a stale read after an acknowledged write: %v, want Illegal", res)
	}
	// A conflict the state does not explain is caught too (a lost update).
	lost := append(append([]porcupine.Operation{}, base[:2]...), op(regInput{key: "k", write: true, expect: "b", value: "c"}, 5, 6, regOutput{outcome: outConflict}),
		op(regInput{key: "k"}, 7, 8, regOutput{value: "b"}))
	if res := checkLinearizable(t, checkable(lost)); res != porcupine.Illegal {
		t.Fatalf("a CAS refused against the current value: %v, want Illegal", res)
	}
}

// Test 9 on the Kubernetes API: clients GET and compare-and-swap PUT a
// few ConfigMaps while the JetStream meta leader's server is killed and
// restarted, then the configmaps stream leader's, then two of three
// servers are lost and come back. The history must be linearizable: no
// lost update, no stale read presented as current.
func TestKubeAPILinearizableThroughFailures(t *testing.T) {
	c := newClusterAPI(t)
	keys := []string{"lin-0", "lin-1", "lin-2"}
	h := &history{start: time.Now()}
	for _, k := range keys {
		call := h.now()
		r := c.call(http.MethodPost, cmPath, configMapJSON(k, "", "init-"+k))
		if r.code != http.StatusCreated {
			t.Fatalf("create %s: %d %v %s", k, r.code, r.err, r.body)
		}
		h.add(0, regInput{key: k, write: true, expect: "", value: "init-" + k}, call, regOutput{})
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	counts := map[string]int{}
	count := func(what string) { mu.Lock(); counts[what]++; mu.Unlock() }
	// rvOf checks each value is seen with one resourceVersion only.
	rvOf := map[string]string{}
	sameRV := func(key, value, rv string) {
		mu.Lock()
		defer mu.Unlock()
		if prev, ok := rvOf[key+"="+value]; ok && prev != rv {
			t.Errorf("%s=%q read with resourceVersion %s and %s", key, value, prev, rv)
		}
		rvOf[key+"="+value] = rv
	}
	read := func(client int, k string) (value, rv string, ok bool) {
		call := h.now()
		r := c.call(http.MethodGet, cmPath+"/"+k, "")
		if r.err != nil || r.code != http.StatusOK {
			count(fmt.Sprintf("get %d", r.code))
			return "", "", false // a failed read has no effect: not recorded
		}
		value, rv, err := configMapValue(r.body)
		if err != nil {
			t.Errorf("get %s: %v", k, err)
			return "", "", false
		}
		count("get 200")
		h.add(client, regInput{key: k}, call, regOutput{value: value})
		sameRV(k, value, rv)
		return value, rv, true
	}
	// list reads every key at once: each item is a read of its key over
	// the list's interval (lists come from the apiserver's caches).
	list := func(client int) {
		call := h.now()
		r := c.call(http.MethodGet, cmPath, "")
		if r.err != nil || r.code != http.StatusOK {
			count(fmt.Sprintf("list %d", r.code))
			return
		}
		var l struct {
			Items []json.RawMessage `json:"items"`
		}
		if err := json.Unmarshal(r.body, &l); err != nil {
			t.Errorf("list: %v", err)
			return
		}
		count("list 200")
		for _, item := range l.Items {
			var m struct {
				Metadata struct{ Name string } `json:"metadata"`
			}
			_ = json.Unmarshal(item, &m)
			value, rv, err := configMapValue(item)
			if err != nil || !strings.HasPrefix(m.Metadata.Name, "lin-") {
				continue
			}
			h.add(client, regInput{key: m.Metadata.Name}, call, regOutput{value: value})
			sameRV(m.Metadata.Name, value, rv)
		}
	}
	const clients = 4
	for cl := 1; cl <= clients; cl++ {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(cl), 7))
			last := map[string][2]string{} // key -> value, rv last read
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				if rng.IntN(8) == 0 {
					list(cl)
					continue
				}
				k := keys[rng.IntN(len(keys))]
				seen, ok := last[k]
				if !ok || rng.IntN(2) == 0 {
					if v, rv, ok := read(cl, k); ok {
						last[k] = [2]string{v, rv}
					} else {
						time.Sleep(50 * time.Millisecond)
					}
					continue
				}
				value := fmt.Sprintf("c%d-%d", cl, n)
				in := regInput{key: k, write: true, expect: seen[0], value: value}
				call := h.now()
				r := c.call(http.MethodPut, cmPath+"/"+k, configMapJSON(k, seen[1], value))
				delete(last, k) // read again before the next write
				switch {
				case r.err == nil && r.code == http.StatusOK:
					got, rv, err := configMapValue(r.body)
					if err != nil || got != value {
						t.Errorf("put %s: %v, body %s", k, err, r.body)
					}
					count("put 200")
					h.add(cl, in, call, regOutput{outcome: outOK})
					sameRV(k, value, rv)
				case r.err == nil && r.code == http.StatusConflict:
					count("put 409")
					h.add(cl, in, call, regOutput{outcome: outConflict})
				default:
					count(fmt.Sprintf("put %d", r.code))
					h.add(cl, in, call, regOutput{outcome: outUnknown})
					time.Sleep(50 * time.Millisecond)
				}
			}
		})
	}
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	}()

	phase := func(what string, d time.Duration) {
		t.Logf("%v: %s", time.Since(h.start).Round(10*time.Millisecond), what)
		time.Sleep(d)
	}
	phase("steady", 2*time.Second)
	// The meta leader's server, then the configmaps stream leader's.
	for _, role := range []string{"meta leader", "stream leader"} {
		victim := -1
		for i := range 3 {
			ns := c.hosts.Server(i)
			if ns == nil {
				continue
			}
			if (role == "meta leader" && ns.JetStreamIsLeader()) || (role == "stream leader" && ns.JetStreamIsStreamLeader("$G", "KV_configmaps")) {
				victim = i
			}
		}
		if victim < 0 {
			t.Logf("no %s found; skipped", role)
			continue
		}
		c.hosts.Stop(victim)
		phase(fmt.Sprintf("%s %s stopped", role, c.hosts.Name(victim)), 3*time.Second)
		c.hosts.Start(victim)
		c.hosts.WaitFormed(30 * time.Second)
		phase(fmt.Sprintf("%s back", c.hosts.Name(victim)), 2*time.Second)
	}
	// Two of three: keep the one the apiserver is connected to.
	keep := c.hosts.Index(c.conn.NATS().ConnectedServerName())
	var lostServers []int
	for i := range 3 {
		if i != keep {
			lostServers = append(lostServers, i)
			c.hosts.Stop(i)
		}
	}
	phase("quorum lost", 4*time.Second)
	for _, i := range lostServers {
		c.hosts.Start(i)
	}
	c.hosts.WaitFormed(30 * time.Second)
	phase("quorum back", 3*time.Second)
	close(stop)
	wg.Wait()
	// A last successful read of every key ends the history (checkable).
	for _, k := range keys {
		bustest.Eventually(t, 20*time.Second, func() error {
			if _, _, ok := read(0, k); !ok {
				return fmt.Errorf("final read of %s failed", k)
			}
			return nil
		})
	}
	t.Logf("operations: %v", counts)
	if counts["put 200"] == 0 || counts["get 200"] == 0 {
		t.Fatalf("too few successful operations to check anything: %v", counts)
	}
	ops := checkable(h.ops)
	t.Logf("history: %d operations recorded, %d checked (unknown writes nobody read dropped)", len(h.ops), len(ops))
	switch res := checkLinearizable(t, ops); res {
	case porcupine.Ok:
	case porcupine.Illegal:
		t.Fatal("the history is not linearizable: a stale read or a lost update was served")
	default:
		t.Fatalf("linearizability check: %v", res)
	}
}
