################################################################################
#
# tinymta
#
################################################################################

# A BR2_EXTERNAL tree (cross/buildroot of tinymta's repository):
#   make BR2_EXTERNAL=/path/to/tinymta/cross/buildroot menuconfig
# The source is that repository, rsynced (SITE_METHOD local: no download,
# so no hash to check; a tarball in TINYMTA_SITE would need tinymta.hash).
TINYMTA_VERSION = 0.1.0
TINYMTA_SITE = $(BR2_EXTERNAL_TINYMTA_PATH)/../..
TINYMTA_SITE_METHOD = local
TINYMTA_OVERRIDE_SRCDIR_RSYNC_EXCLUSIONS = --exclude=/target --exclude=/var --exclude=/fuzz
TINYMTA_LICENSE = MIT
# Its sendmail link replaces busybox's sendmail applet, if there is one.
TINYMTA_DEPENDENCIES = $(if $(BR2_PACKAGE_BUSYBOX),busybox)

# The cargo infrastructure vendors the crates as it downloads a package,
# and builds with --offline; a local package is not downloaded, so the
# crates are vendored here, once host-rustc is built, with its cargo.
define TINYMTA_VENDOR_CRATES
	mkdir -p $(@D)/.cargo
	cd $(@D) && $(TARGET_MAKE_ENV) $(PKG_CARGO_ENV) \
		cargo vendor --locked --versioned-dirs vendor > .cargo/config.toml
endef
TINYMTA_PRE_CONFIGURE_HOOKS += TINYMTA_VENDOR_CRATES

# In /usr/sbin, where README and the init script look for it (cargo
# install would put it in /usr/bin); the links are tinymta under the names
# it answers to.
define TINYMTA_INSTALL_TARGET_CMDS
	$(INSTALL) -D -m 0755 \
		$(@D)/target/$(RUSTC_TARGET_NAME)/$(if $(BR2_ENABLE_DEBUG),debug,release)/tinymta \
		$(TARGET_DIR)/usr/sbin/tinymta
	ln -sf tinymta $(TARGET_DIR)/usr/sbin/sendmail
	mkdir -p $(TARGET_DIR)/usr/lib $(TARGET_DIR)/usr/bin
	ln -sf ../sbin/tinymta $(TARGET_DIR)/usr/lib/sendmail
	ln -sf ../sbin/tinymta $(TARGET_DIR)/usr/bin/mailq
	ln -sf ../sbin/tinymta $(TARGET_DIR)/usr/bin/mail
	$(INSTALL) -D -m 0644 $(TINYMTA_PKGDIR)/tinymta.conf $(TARGET_DIR)/etc/tinymta.conf
endef

define TINYMTA_INSTALL_INIT_SYSV
	$(INSTALL) -D -m 0755 $(@D)/etc/init.d/S50tinymta \
		$(TARGET_DIR)/etc/init.d/S50tinymta
endef

# The user the daemon becomes after binding its ports.
define TINYMTA_USERS
	tinymta -1 tinymta -1 * - - - tinymta mail daemon
endef

$(eval $(cargo-package))
