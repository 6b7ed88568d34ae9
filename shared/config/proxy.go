package config

import (
	"fmt"

	"github.com/camelot/lancelot/shared/proxyproto"
)

// validateProxy checks the PROXY protocol settings: a mode, and the peers
// trusted to send a header whenever the protocol is on.
func (c Config) validateProxy() error {
	mode, allow, err := c.Proxy()
	if err != nil {
		return err
	}
	if mode != proxyproto.Off && allow.Empty() {
		return fmt.Errorf("--proxy-protocol %s needs --proxy-allow-from (the load balancers' addresses)", mode)
	}
	return nil
}

// Proxy returns the PROXY protocol mode and the peers trusted to send a
// header.
func (c Config) Proxy() (proxyproto.Mode, proxyproto.AllowList, error) {
	mode, err := proxyproto.ParseMode(c.ProxyProtocol)
	if err != nil {
		return mode, proxyproto.AllowList{}, fmt.Errorf("--proxy-protocol: %w", err)
	}
	if c.ProxyAllowFrom == "" {
		return mode, proxyproto.AllowList{}, nil
	}
	allow, err := proxyproto.ParseAllowList(c.ProxyAllowFrom)
	if err != nil {
		return mode, allow, fmt.Errorf("--proxy-allow-from: %w", err)
	}
	return mode, allow, nil
}
