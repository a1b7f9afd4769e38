# Release build and install of SwiftLVS: lvsd, ipvsadm and genhash, lvsd's systemd unit, its
# options file and the configuration directory.
#   make                      swift build -c release
#   sudo make install         into PREFIX (/usr/local), the unit into /etc/systemd/system
#   make install DESTDIR=/tmp/stage
#   sudo make uninstall
PREFIX ?= /usr/local
SBINDIR ?= $(PREFIX)/sbin
UNITDIR ?= /etc/systemd/system
SYSCONFDIR ?= /etc
# Where the built programs are (install-files takes them from here).
BIN ?= .build/release
PROGRAMS = lvsd ipvsadm genhash

.PHONY: all build install install-files uninstall

all: build

build:
	swift build -c release --product lvsd
	swift build -c release --product ipvsadm
	swift build -c release --product genhash

install: build install-files

install-files:
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSCONFDIR)/default $(DESTDIR)$(SYSCONFDIR)/swiftlvs
	for p in $(PROGRAMS); do install -m 0755 $(BIN)/$$p $(DESTDIR)$(SBINDIR)/$$p; done
	sed 's|@SBINDIR@|$(SBINDIR)|g' packaging/lvsd.service >$(DESTDIR)$(UNITDIR)/lvsd.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/lvsd.service
	[ -e $(DESTDIR)$(SYSCONFDIR)/default/lvsd ] || install -m 0644 packaging/lvsd.default $(DESTDIR)$(SYSCONFDIR)/default/lvsd
	@echo "installed: $(SBINDIR)/{lvsd,ipvsadm,genhash}, $(UNITDIR)/lvsd.service, $(SYSCONFDIR)/default/lvsd"
	@if [ -z "$(DESTDIR)" ] && command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then systemctl daemon-reload; \
	    echo "start it with: systemctl enable --now lvsd"; fi

uninstall:
	for p in $(PROGRAMS); do rm -f $(DESTDIR)$(SBINDIR)/$$p; done
	rm -f $(DESTDIR)$(UNITDIR)/lvsd.service
	@echo "kept: $(SYSCONFDIR)/default/lvsd and $(SYSCONFDIR)/swiftlvs (your settings)"
