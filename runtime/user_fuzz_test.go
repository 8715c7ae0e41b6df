package runtime

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// FuzzResolveUser: an image's /etc/passwd and /etc/group are outside input.
// Whatever they hold, resolving a user never panics, and a numeric uid is
// taken as given.
func FuzzResolveUser(f *testing.F) {
	f.Add("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n", "wheel:x:10:nobody,root\n", "nobody")
	f.Add("a:x:1:2\n", "g:x:3:a\n", "a:g")
	f.Add("a:x:notanumber:2\n", "g:x:-1:\n", "1000:g")
	f.Add("::::\n#c\n\n", ":::,,,\n", ":")
	f.Fuzz(func(t *testing.T, passwd, group, user string) {
		root := t.TempDir()
		if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
			t.Fatal(err)
		}
		for name, data := range map[string]string{"passwd": passwd, "group": group} {
			if err := os.WriteFile(filepath.Join(root, "etc", name), []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		id, err := resolveUser(root, user)
		uname, _, _ := strings.Cut(user, ":")
		if n, perr := strconv.ParseUint(uname, 10, 32); perr == nil && err == nil && id.UID != uint32(n) {
			t.Fatalf("user %q resolved to uid %d", user, id.UID)
		}
	})
}
