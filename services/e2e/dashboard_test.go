package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromium finds Debian's chromium, installing it if it is missing; the
// test skips, saying why, where that is not possible.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		t.Skip("chromium is not installed and there is no apt-get to install it (apt-get install chromium)")
	}
	t.Log("installing chromium with apt-get (.ci/run does this beforehand)")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for _, args := range [][]string{{"update", "-qq"}, {"install", "-y", "-qq", "chromium"}} {
		cmd := exec.CommandContext(ctx, "apt-get", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Skipf("chromium is not installed and apt-get %s failed (%v): %s", strings.Join(args, " "), err, out)
		}
	}
	p, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium still not found after apt-get install chromium")
	}
	return p
}

// TestDashboard drives /ui in a real headless chromium against a real
// `miniku up`: it logs in with /ui?token=, sees the nodes and a
// replicaset, scales it from the page and sees the new pods appear
// through the watch, opens a pod's events and logs, and saves a
// screenshot (dashboard.png in the test's artifact directory; go test
// -artifacts keeps it, and MINIKU_SCREENSHOT=path copies it there).
func TestDashboard(t *testing.T) {
	requireRoot(t)
	browser := chromium(t)
	c := newCluster(t)
	c.up(t)
	a := c.api

	rs := `{"name":"web","desiredCount":1,"selector":{"app":"web"},"template":{"image":"alpine","command":["/bin/sh","-c","while true; do echo hello from $HOSTNAME; sleep 1; done"],"terminationGracePeriodSeconds":1}}`
	if code, body := a.do("POST", "/replicasets", rs); code != 201 {
		t.Fatalf("POST /replicasets: %d %s", code, body)
	}
	eventually(t, 60*time.Second, func() error { _, err := running(a, "web", 1); return err })

	// The whole browser session is bounded; every wait below is within it.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(browser),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	defer cancelAlloc() // also waits for the browser to exit
	bctx, cancelBrowser := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	defer cancelBrowser()

	// Before any token the login names this up's own token file (its
	// --data-dir, not the default one) and the badge is neutral: nothing
	// was tried, so nothing is "reconnecting".
	want := "sudo cat " + filepath.Join(c.dataDir, "token")
	if err := chromedp.Do(bctx, chromedp.Navigate(a.base+"/ui/")); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(bctx, chromedp.Poll[bool](fmt.Sprintf(
		`document.getElementById('token-hint').textContent === %q && document.getElementById('conn').textContent === 'no token'`, want),
		chromedp.WithPollingTimeout(10*time.Second))); err != nil {
		hint, _ := chromedp.Run(bctx, chromedp.TextContent(chromedp.CSS(`#token-hint`)))
		badge, _ := chromedp.Run(bctx, chromedp.TextContent(chromedp.CSS(`#conn`)))
		t.Fatalf("login page before a token: hint %q badge %q, want %q and %q: %v", hint, badge, want, "no token", err)
	}

	token := mustToken(t, c)
	if err := chromedp.Do(bctx,
		chromedp.Navigate(a.base+"/ui?token="+token),
		chromedp.WaitVisible(chromedp.CSS(`#replicasets tbody tr[data-name="web"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#nodes tbody tr[data-name="node-2"]`)),
	); err != nil {
		t.Fatalf("dashboard did not show replicaset web and both nodes: %v", err)
	}
	// Set on the loaded page: still there at the end proves that the page
	// never reloaded, i.e. everything it showed came from its watches.
	if _, err := chromedp.Run(bctx, chromedp.Evaluate[int](`window.loadedOnce = 1`)); err != nil {
		t.Fatal(err)
	}
	loc, err := chromedp.Run(bctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(loc, token) {
		t.Errorf("the token stays in the address bar: %s", loc)
	}

	// waitJS polls a JavaScript condition in the page; the page updates
	// only from its watches, so anything it shows came through them.
	waitJS := func(what, expr string) {
		t.Helper()
		var last string
		for {
			v, err := chromedp.Run(bctx, chromedp.Evaluate[string](expr))
			if err == nil && v == "" {
				return
			}
			last = v
			if err != nil {
				last = err.Error()
			}
			select {
			case <-bctx.Done():
				t.Fatalf("%s: not seen within the browser's time: %s", what, last)
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	waitJS("node-1 Ready", `(() => { const s = document.querySelector('#nodes tr[data-name="node-1"] td:nth-child(2)'); return s && s.textContent.startsWith('Ready') ? '' : 'node-1: ' + (s && s.textContent); })()`)
	runningWebPods := `(() => { const rows = [...document.querySelectorAll('#pods tbody tr')].filter(r => r.dataset.name.startsWith('web-'));
		const run = rows.filter(r => r.querySelector('.status').textContent === 'Running');
		return run.length === %d && rows.length === %d ? '' : rows.length + ' web pods, ' + run.length + ' Running'; })()`
	waitJS("one web pod Running", fmt.Sprintf(runningWebPods, 1, 1))

	if err := chromedp.Do(bctx,
		chromedp.SetValue(chromedp.CSS(`#replicasets tr[data-name="web"] input.scale`), "3"),
		chromedp.Click(chromedp.CSS(`#replicasets tr[data-name="web"] button.scale-btn`)),
	); err != nil {
		t.Fatalf("scale from the page: %v", err)
	}
	waitJS("three web pods Running after scaling from the page", fmt.Sprintf(runningWebPods, 3, 3))
	waitJS("replicaset row shows 3 desired and 3 ready", `(() => { const r = document.querySelector('#replicasets tr[data-name="web"]');
		const d = r.querySelector('.desired').textContent, rd = r.querySelector('.ready').textContent;
		return d === '3' && rd === '3' ? '' : 'desired ' + d + ' ready ' + rd; })()`)
	got, err := a.replicaSet("web")
	if err != nil {
		t.Fatal(err)
	}
	if got.DesiredCount != 3 {
		t.Fatalf("desiredCount in the API after scaling from the page: %d, want 3", got.DesiredCount)
	}
	if _, err := running(a, "web", 3); err != nil {
		t.Fatalf("API after scaling from the page: %v", err)
	}

	// A pod's events and logs on click.
	if err := chromedp.Do(bctx, chromedp.Click(chromedp.CSS(`#pods tbody tr[data-name^="web-"]`))); err != nil {
		t.Fatalf("click a pod: %v", err)
	}
	waitJS("the pod's Scheduled event", `[...document.querySelectorAll('#events tbody td')].some(td => td.textContent === 'Scheduled') ? '' : document.querySelector('#events tbody').textContent`)
	waitJS("the pod's logs", `document.getElementById('logs').textContent.includes('hello from web-') ? '' : document.getElementById('logs').textContent`)

	png, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	path := filepath.Join(t.ArtifactDir(), "dashboard.png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", path, len(png))
	if dst := os.Getenv("MINIKU_SCREENSHOT"); dst != "" {
		if err := os.WriteFile(dst, png, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// Delete the replicaset from the page (confirming the dialog): its
	// row and its pods leave the page as the deletes come through.
	if _, err := chromedp.Run(bctx, chromedp.Evaluate[bool](`(window.confirm = () => true, true)`)); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(bctx, chromedp.Click(chromedp.CSS(`#replicasets tr[data-name="web"] button.danger`))); err != nil {
		t.Fatalf("delete from the page: %v", err)
	}
	waitJS("replicaset and pods gone from the page", `(() => { const n = document.querySelectorAll('#replicasets tr[data-name="web"], #pods tr[data-name^="web-"]').length; return n === 0 ? '' : n + ' rows left'; })()`)
	if code, _ := a.do("GET", "/replicasets/web", ""); code != 404 {
		t.Errorf("GET /replicasets/web after deleting it from the page: %d, want 404", code)
	}
	if v, err := chromedp.Run(bctx, chromedp.Evaluate[int](`window.loadedOnce || 0`)); err != nil || v != 1 {
		t.Errorf("the page reloaded (loadedOnce = %v, %v)", v, err)
	}
}
