package main

import (
	"time"

	"github.com/spf13/cobra"

	"portcullis/internal/dns"
)

// globalFlags are the flags every command that does DNS understands.
type globalFlags struct {
	dnsServers []string
	dnsZone    string
	dnsTimeout time.Duration
}

func (g *globalFlags) register(root *cobra.Command) {
	pf := root.PersistentFlags()
	pf.StringArrayVar(&g.dnsServers, "dns-server", nil, "DNS server HOST:PORT to ask (repeatable; default: the nameservers of /etc/resolv.conf)")
	pf.StringVar(&g.dnsZone, "dns-zone", "", "answer DNS from this RFC 1035 zone file instead of the network (lab mode)")
	pf.DurationVar(&g.dnsTimeout, "dns-timeout", 2*time.Second, "timeout of one DNS query attempt")
}

// resolver builds the Resolver the flags describe, wrapped in a cache.
func (g *globalFlags) resolver() (dns.Resolver, error) {
	return newResolver(g)
}
