package config

import "fmt"

// validateProxy checks the PROXY protocol settings: a mode, and the peers
// trusted to send a header whenever the protocol is on.
func (c Config) validateProxy() error {
	switch c.ProxyProtocol {
	case "off":
		return nil
	case "v1", "v2", "auto":
	default:
		return fmt.Errorf("--proxy-protocol %q: must be off, v1, v2 or auto", c.ProxyProtocol)
	}
	if c.ProxyAllowFrom == "" {
		return fmt.Errorf("--proxy-protocol %s needs --proxy-allow-from (the load balancers' addresses)", c.ProxyProtocol)
	}
	return nil
}
