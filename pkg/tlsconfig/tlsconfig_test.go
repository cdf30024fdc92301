package tlsconfig_test

import (
	"errors"
	"testing"

	"github.com/klantreis/journey/internal/tlstest"
	"github.com/klantreis/journey/pkg/tlsconfig"
)

func TestTLSSettingsErrors(t *testing.T) {
	f := tlstest.New(t)
	for name, s := range map[string]tlsconfig.Server{
		"cert without key":   {CertFile: f.ServerCert},
		"client CA, no cert": {ClientCAFile: f.CA},
		"missing file":       {CertFile: "/nonexistent.pem", KeyFile: f.ServerKey},
		"key for cert swap":  {CertFile: f.ServerCert, KeyFile: f.ClientKey},
	} {
		if _, err := s.Config(); !errors.Is(err, tlsconfig.ErrTLS) {
			t.Errorf("%s: %v, want ErrTLS", name, err)
		}
	}
	for name, c := range map[string]tlsconfig.Client{
		"cert without key": {CertFile: f.ClientCert},
		"CA not PEM":       {CAFile: f.ServerKey},
	} {
		if _, err := c.Config(); !errors.Is(err, tlsconfig.ErrTLS) {
			t.Errorf("%s: %v, want ErrTLS", name, err)
		}
	}
}

func TestTLSOff(t *testing.T) {
	if c, err := (tlsconfig.Client{}).Config(); c != nil || err != nil {
		t.Fatalf("zero client: %v %v", c, err)
	}
	if c, err := (tlsconfig.Server{}).Config(); c != nil || err != nil {
		t.Fatalf("zero server: %v %v", c, err)
	}
	c, err := tlsconfig.Client{Enable: true}.Config()
	if err != nil || c == nil || c.RootCAs != nil || c.InsecureSkipVerify {
		t.Fatalf("Enable alone: system roots, verified: %+v %v", c, err)
	}
}
