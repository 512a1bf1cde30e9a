package gozd

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// account is the user and group workers run as.
type account struct {
	uid, gid uint32
	groups   []uint32
	name     string
}

// lookupAccount resolves the config's user and group; nil when neither is
// set.
func lookupAccount(cfg *Config) (*account, error) {
	if cfg.User == "" && cfg.UserGroup == "" {
		return nil, nil
	}
	a := &account{uid: uint32(os.Getuid()), gid: uint32(os.Getgid())}
	if cfg.User != "" {
		u, err := user.Lookup(cfg.User)
		if err != nil {
			if u, err = user.LookupId(cfg.User); err != nil {
				return nil, fmt.Errorf("user %q: %w", cfg.User, err)
			}
		}
		uid, _ := strconv.ParseUint(u.Uid, 10, 32)
		gid, _ := strconv.ParseUint(u.Gid, 10, 32)
		a.uid, a.gid, a.name = uint32(uid), uint32(gid), u.Username
		// The user's supplementary groups, as initgroups gives them
		// (a key readable through group ssl-cert, say).
		if ids, err := u.GroupIds(); err == nil {
			for _, id := range ids {
				if g, err := strconv.ParseUint(id, 10, 32); err == nil {
					a.groups = append(a.groups, uint32(g))
				}
			}
		}
	}
	if cfg.UserGroup != "" {
		g, err := user.LookupGroup(cfg.UserGroup)
		if err != nil {
			if g, err = user.LookupGroupId(cfg.UserGroup); err != nil {
				return nil, fmt.Errorf("group %q: %w", cfg.UserGroup, err)
			}
		}
		gid, _ := strconv.ParseUint(g.Gid, 10, 32)
		a.gid = uint32(gid)
	}
	if !slices.Contains(a.groups, a.gid) {
		a.groups = append(a.groups, a.gid)
	}
	return a, nil
}

// checkAccounts checks, at start and before every reload, that the master
// may start workers as the configured account, and that the https key and
// certificate files are readable by that account, which is what workers load
// them as.
func checkAccounts(cfg *Config) error {
	_, err := resolveAccount(cfg)
	return err
}

// resolveAccount is checkAccounts returning the account it checked, for
// starting workers without another lookup; nil when the config names none.
func resolveAccount(cfg *Config) (*account, error) {
	a, err := lookupAccount(cfg)
	if err != nil || a == nil {
		return nil, err
	}
	if os.Geteuid() != 0 && (a.uid != uint32(os.Geteuid()) || a.gid != uint32(os.Getegid())) {
		return nil, fmt.Errorf("%s: user %q group %q: running workers as another account needs root (running as uid %d)", cfg.File, cfg.User, cfg.UserGroup, os.Geteuid())
	}
	for i := range cfg.Groups {
		g := &cfg.Groups[i]
		for _, path := range []string{g.Key, g.Cert} {
			if path != "" && !readableBy(path, a) {
				return nil, fmt.Errorf("%s: %s is not readable by uid %d gid %d (user %q group %q), which workers run as", g, path, a.uid, a.gid, cfg.User, cfg.UserGroup)
			}
		}
	}
	return a, nil
}

// readableBy reports whether a can read path, judged by its permission bits.
func readableBy(path string, a *account) bool {
	fi, err := os.Stat(path)
	if err != nil {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return true
	}
	perm := fi.Mode().Perm()
	switch {
	case a.uid == 0:
		return true
	case st.Uid == a.uid:
		return perm&0o400 != 0
	case slices.Contains(a.groups, st.Gid):
		return perm&0o040 != 0
	}
	return perm&0o004 != 0
}

// credential is how workers are started: as account a (nil: as the
// master), set for the exec so no application code ever runs privileged.
func credential(a *account) *syscall.Credential {
	if a == nil || a.uid == uint32(os.Getuid()) && a.gid == uint32(os.Getgid()) {
		return nil
	}
	return &syscall.Credential{Uid: a.uid, Gid: a.gid, Groups: a.groups}
}

// setMaxFDs sets RLIMIT_NOFILE for the master and so for its workers.
// syscall.Setrlimit (not x/sys/unix) makes the children keep it. The hard
// limit is set too: a Go worker raises its soft limit to the hard one as it
// starts, so a soft limit alone would not hold there.
func setMaxFDs(n uint64) error {
	lim := syscall.Rlimit{Cur: n, Max: n}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		var cur syscall.Rlimit
		if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &cur) == nil && n > cur.Max {
			return fmt.Errorf("maxfds %d exceeds the hard limit %d, which only a privileged process can raise (systemd: LimitNOFILE=): %w", n, cur.Max, err)
		}
		return fmt.Errorf("maxfds %d: %w", n, err)
	}
	return nil
}

// splitOwner splits an owner value, "user:group", "user" or ":group", into
// its parts; a part not given is "".
func splitOwner(owner string) (user, group string, err error) {
	user, group, colon := strings.Cut(owner, ":")
	if user == "" && group == "" || colon && group == "" || strings.Contains(group, ":") {
		return "", "", fmt.Errorf("bad owner %q: use user:group, user or :group", owner)
	}
	return user, group, nil
}

// lookupOwner returns the uid and gid an owner value names, -1 for a part
// it does not give; "" gives neither. Names are looked up, digits are ids.
func lookupOwner(owner string) (uid, gid int, err error) {
	uid, gid = -1, -1
	if owner == "" {
		return uid, gid, nil
	}
	userName, groupName, err := splitOwner(owner)
	if err != nil {
		return -1, -1, err
	}
	if userName != "" {
		if uid, err = lookupID("user", userName); err != nil {
			return -1, -1, err
		}
	}
	if groupName != "" {
		if gid, err = lookupID("group", groupName); err != nil {
			return -1, -1, err
		}
	}
	return uid, gid, nil
}

// lookupID returns the id of a user or group (kind), given by name or as
// digits.
func lookupID(kind, name string) (int, error) {
	id := name
	if !isDigits(name) {
		var err error
		if kind == "user" {
			var u *user.User
			if u, err = user.Lookup(name); err == nil {
				id = u.Uid
			}
		} else {
			var g *user.Group
			if g, err = user.LookupGroup(name); err == nil {
				id = g.Gid
			}
		}
		if errors.As(err, new(user.UnknownUserError)) || errors.As(err, new(user.UnknownGroupError)) {
			return -1, fmt.Errorf("unknown %s %q", kind, name)
		}
		if err != nil {
			return -1, fmt.Errorf("looking up %s %q: %w", kind, name, err)
		}
	}
	n, err := strconv.ParseUint(id, 10, 32)
	if err != nil || n == 1<<32-1 {
		return -1, fmt.Errorf("bad %s id %q", kind, id)
	}
	return int(n), nil
}
