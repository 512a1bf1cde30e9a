package gozd

import (
	"fmt"
	"log/slog"
	"net"
	"os"

	"github.com/coreos/go-systemd/v22/activation"
	"github.com/coreos/go-systemd/v22/daemon"
)

// notifier speaks systemd's notify protocol when NOTIFY_SOCKET is set (a
// Type=notify or Type=notify-reload unit); otherwise it does nothing.
type notifier struct {
	log     *slog.Logger
	enabled bool
}

func newNotifier(log *slog.Logger) *notifier {
	_, ok := os.LookupEnv("NOTIFY_SOCKET")
	return &notifier{log: log, enabled: ok}
}

func (n *notifier) send(state string) {
	if !n.enabled {
		return
	}
	if _, err := daemon.SdNotify(false, state); err != nil {
		n.log.Warn("systemd notify failed", "state", state, "err", err)
	}
}

func (n *notifier) ready() { n.send(daemon.SdNotifyReady) }

// reloading follows Type=notify-reload: RELOADING=1 with the monotonic clock.
func (n *notifier) reloading() {
	n.send(daemon.SdNotifyReloading + "\n" + daemon.SdNotifyMonotonicUsec())
}

func (n *notifier) stopping() { n.send(daemon.SdNotifyStopping) }

// activationListeners takes the sockets systemd passed (LISTEN_FDS) and
// matches each to a group: by name (FileDescriptorName= in the socket unit,
// seen in LISTEN_FDNAMES) or else by address. A socket no group claims is an
// error: the unit and the config disagree.
func activationListeners(cfg *Config) (map[string]net.Listener, error) {
	files := activation.Files(true)
	if len(files) == 0 {
		return nil, nil
	}
	byGroup := make(map[string]net.Listener)
	fail := func(err error) (map[string]net.Listener, error) {
		for _, ln := range byGroup {
			ln.Close()
		}
		return nil, err
	}
	for _, f := range files {
		ln, err := listenerFromFile(f) // a listener, or a udp socket
		f.Close()
		if err != nil {
			return fail(fmt.Errorf("socket activation: %s: %w", f.Name(), err))
		}
		g := activatedGroup(cfg, f.Name(), ln.Addr())
		if g == nil {
			ln.Close()
			return fail(fmt.Errorf("socket activation: no group in %s for socket %s (%s)", cfg.File, f.Name(), ln.Addr()))
		}
		if _, dup := byGroup[g.Name]; dup {
			ln.Close()
			return fail(fmt.Errorf("socket activation: two sockets for %s", g))
		}
		byGroup[g.Name] = ln
	}
	return byGroup, nil
}

func activatedGroup(cfg *Config, name string, addr net.Addr) *GroupConfig {
	if g, ok := cfg.Group(name); ok {
		return g
	}
	for i := range cfg.Groups {
		g := &cfg.Groups[i]
		if g.Network != addr.Network() {
			continue
		}
		if g.Network == "unix" && g.Address == addr.String() {
			return g
		}
		if g.Network == "tcp" && sameTCPAddr(g.Address, addr) {
			return g
		}
		if g.Network == "udp" && sameUDPAddr(g.Address, addr) {
			return g
		}
	}
	return nil
}

// sameTCPAddr reports whether a configured host:port names addr, an empty
// host matching the wildcard address.
func sameTCPAddr(configured string, addr net.Addr) bool {
	ta, ok := addr.(*net.TCPAddr)
	if !ok {
		return false
	}
	want, err := net.ResolveTCPAddr("tcp", configured)
	if err != nil || want.Port != ta.Port {
		return false
	}
	if want.IP == nil {
		return ta.IP.IsUnspecified()
	}
	return want.IP.Equal(ta.IP)
}
