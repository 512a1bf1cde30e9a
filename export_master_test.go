package gozd

// DelayReloadConfig makes every reload run wait() before it reads the
// config, as a config on a hung disk or a user lookup through a hung NSS
// service (LDAP) would: for the tests of what the master does meanwhile.
func DelayReloadConfig(wait func()) {
	load := loadReloadConfig
	loadReloadConfig = func(path string) (*Config, *account, error) {
		wait()
		return load(path)
	}
}
