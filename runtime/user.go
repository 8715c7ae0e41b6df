package runtime

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// ids is the identity the container's command runs as.
type ids struct {
	UID, GID uint32
	Groups   []uint32 // supplementary groups
}

// resolveUser turns an image config User ("uid", "uid:gid", "name",
// "name:group", empty for root) into ids, looking names up in the
// container's own /etc/passwd and /etc/group, never the host's.
func resolveUser(rootfs, user string) (ids, error) {
	if user == "" {
		return ids{}, nil
	}
	// os.Root: a symlinked /etc/passwd in an image must not make us read
	// the host's.
	root, err := os.OpenRoot(rootfs)
	if err != nil {
		return ids{}, err
	}
	defer root.Close()
	uname, gname, hasGroup := strings.Cut(user, ":")
	var id ids
	var name string
	primary := false
	passwd := readColonFile(root, "etc/passwd")
	if n, err := strconv.ParseUint(uname, 10, 32); err == nil {
		id.UID = uint32(n)
		for _, f := range passwd {
			if len(f) >= 4 && f[2] == uname {
				name = f[0]
				if g, err := strconv.ParseUint(f[3], 10, 32); err == nil {
					id.GID, primary = uint32(g), true
				}
				break
			}
		}
	} else {
		found := false
		for _, f := range passwd {
			if len(f) >= 4 && f[0] == uname {
				u, err1 := strconv.ParseUint(f[2], 10, 32)
				g, err2 := strconv.ParseUint(f[3], 10, 32)
				if err1 != nil || err2 != nil {
					return ids{}, fmt.Errorf("user %q: bad /etc/passwd entry", uname)
				}
				id.UID, id.GID, name, primary, found = uint32(u), uint32(g), uname, true, true
				break
			}
		}
		if !found {
			return ids{}, fmt.Errorf("user %q: not in the image's /etc/passwd", uname)
		}
	}
	groups := readColonFile(root, "etc/group")
	if hasGroup {
		if n, err := strconv.ParseUint(gname, 10, 32); err == nil {
			id.GID = uint32(n)
		} else {
			found := false
			for _, f := range groups {
				if len(f) >= 3 && f[0] == gname {
					g, err := strconv.ParseUint(f[2], 10, 32)
					if err != nil {
						return ids{}, fmt.Errorf("group %q: bad /etc/group entry", gname)
					}
					id.GID, found = uint32(g), true
					break
				}
			}
			if !found {
				return ids{}, fmt.Errorf("group %q: not in the image's /etc/group", gname)
			}
		}
	} else if !primary {
		id.GID = 0
	}
	// Supplementary groups only for a named user without an explicit group,
	// as Docker does.
	if name != "" && !hasGroup {
		for _, f := range groups {
			if len(f) < 4 {
				continue
			}
			for _, m := range strings.Split(f[3], ",") {
				if m == name {
					if g, err := strconv.ParseUint(f[2], 10, 32); err == nil && uint32(g) != id.GID {
						id.Groups = append(id.Groups, uint32(g))
					}
				}
			}
		}
	}
	return id, nil
}

// readColonFile reads a passwd-style file; a missing one is empty.
func readColonFile(root *os.Root, name string) [][]string {
	f, err := root.Open(name)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out [][]string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		out = append(out, strings.Split(line, ":"))
	}
	return out
}
