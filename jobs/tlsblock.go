package jobs

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"gopkg.in/yaml.v3"
)

// The redis.tls: key: true, false, or a mapping with a private CA, a
// client certificate and the server's name.

// tlsKeys are the keys of the redis.tls: mapping.
var tlsKeys = keyTable[*tlsDraft]{
	{"ca_file", func(d *decoder, s *tlsDraft, _, v *yaml.Node, a at) { s.t.CAFile, s.ca = d.path(v, a), v }},
	{"cert_file", func(d *decoder, s *tlsDraft, _, v *yaml.Node, a at) { s.t.CertFile, s.cert = d.path(v, a), v }},
	{"key_file", func(d *decoder, s *tlsDraft, _, v *yaml.Node, a at) { s.t.KeyFile, s.key = d.path(v, a), v }},
	{"server_name", func(d *decoder, s *tlsDraft, _, v *yaml.Node, a at) { s.t.ServerName, _ = d.str(v, a) }},
	{"insecure_skip_verify", func(d *decoder, s *tlsDraft, _, v *yaml.Node, a at) {
		if b, ok := d.boolean(v, a); ok {
			s.t.InsecureSkipVerify, s.insecure = b, v
		}
	}},
}

// tlsDraft is the tls: mapping while it is decoded, with the nodes that
// later checks blame.
type tlsDraft struct {
	t                       RedisTLS
	ca, cert, key, insecure *yaml.Node
}

// tlsKey decodes redis.tls: a boolean, or a mapping that turns TLS on.
func (d *decoder) tlsKey(s *redisDraft, _, v *yaml.Node, a at) {
	switch deref(v).Kind {
	case yaml.MappingNode:
	case yaml.ScalarNode:
		if b, ok := d.boolean(v, a); ok {
			s.r.TLS = s.r.TLS || b
		}
		return
	default:
		d.fail(v, a, nil, "want true, false or a mapping %s, got %s", tlsKeys.shape(), describe(v))
		return
	}
	t := &tlsDraft{}
	decodeBlock(d, v, a, tlsKeys, t)
	d.checkTLS(v, a, t)
	s.r.TLS, s.r.TLSOptions = true, &t.t
}

// path decodes a file path, resolved against the config file's directory.
func (d *decoder) path(v *yaml.Node, a at) string {
	p, ok := d.str(v, a)
	if !ok || p == "" {
		if ok {
			d.fail(v, a, nil, "empty path")
		}
		return ""
	}
	if !filepath.IsAbs(p) {
		p = filepath.Join(filepath.Dir(d.file), p)
	}
	return p
}

// checkTLS reads the files the tls: mapping names, so that a replica that
// loads the file can also make the TLS connection: the CA file must hold
// PEM certificates, and the client certificate must come with its key.
// Messages never quote a key.
func (d *decoder) checkTLS(n *yaml.Node, a at, t *tlsDraft) {
	if t.t.CAFile != "" {
		if _, err := LoadCAFile(t.t.CAFile); err != nil {
			d.fail(t.ca, a.sub("ca_file"), nil, "%v", err)
		}
	}
	switch {
	case t.cert != nil && t.key == nil:
		d.fail(t.cert, a.sub("key_file"), nil, "missing: cert_file needs the private key of its certificate")
	case t.key != nil && t.cert == nil:
		d.fail(t.key, a.sub("cert_file"), nil, "missing: key_file needs the certificate it goes with")
	case t.t.CertFile != "" && t.t.KeyFile != "":
		certPEM, err := ReadPEMFile(t.t.CertFile)
		if err != nil {
			d.fail(t.cert, a.sub("cert_file"), nil, "cannot read the client certificate: %v", err)
			return
		}
		keyPEM, err := ReadPEMFile(t.t.KeyFile)
		if err != nil {
			d.fail(t.key, a.sub("key_file"), nil, "cannot read the client key: %v", err)
			return
		}
		if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
			d.fail(t.cert, a.sub("cert_file"), nil, "bad client certificate or key (%s, %s): %v", t.t.CertFile, t.t.KeyFile, err)
		}
	}
	if t.t.InsecureSkipVerify {
		d.warn(t.insecure, a.sub("insecure_skip_verify"), "the server's certificate is not verified: anyone on the path can pose as Redis; for tests only")
	}
}

// LoadCAFile reads a PEM file of CA certificates into a pool. It fails
// when the file cannot be read, holds no certificate, or holds one that
// does not parse.
func LoadCAFile(path string) (*x509.CertPool, error) {
	data, err := ReadPEMFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read the CA file: %w", err)
	}
	pool := x509.NewCertPool()
	n := 0
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("bad certificate %d in the CA file %s: %w", n+1, path, err)
		}
		pool.AddCert(c)
		n++
	}
	if n == 0 {
		return nil, fmt.Errorf("no PEM certificate in the CA file %s", path)
	}
	return pool, nil
}

// MaxPEMFile is the largest certificate or key file read.
const MaxPEMFile = 1 << 20

// ReadPEMFile reads a certificate or key file: a regular file of at most
// MaxPEMFile bytes (never a device or a pipe that would not end).
func ReadPEMFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	if st.Size() > MaxPEMFile {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, MaxPEMFile)
	}
	return io.ReadAll(io.LimitReader(f, MaxPEMFile))
}
