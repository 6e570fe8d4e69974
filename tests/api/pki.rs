//! A throw-away PKI for TLS tests: a CA, a server certificate for 127.0.0.1 / localhost, two
//! client certificates from that CA and one from a rogue CA.

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::{BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName};
use openssl::x509::{X509Builder, X509NameBuilder, X509};
use std::path::{Path, PathBuf};

pub struct Issued {
    pub cert: X509,
    pub key: PKey<Private>,
}

impl Issued {
    pub fn cert_pem(&self) -> Vec<u8> {
        self.cert.to_pem().unwrap()
    }
    pub fn key_pem(&self) -> Vec<u8> {
        self.key.private_key_to_pem_pkcs8().unwrap()
    }
    pub fn sha256(&self) -> String {
        hex::encode(self.cert.digest(MessageDigest::sha256()).unwrap())
    }
    pub fn identity(&self) -> reqwest::Identity {
        reqwest::Identity::from_pkcs8_pem(&self.cert_pem(), &self.key_pem()).unwrap()
    }
}

fn key() -> PKey<Private> {
    PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap()
}

fn build(cn: &str, key: &PKey<Private>, issuer: Option<&Issued>, ca: bool, server: bool) -> X509 {
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", cn).unwrap();
    let name = name.build();
    let mut b = X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    let mut serial = BigNum::new().unwrap();
    serial.rand(64, MsbOption::MAYBE_ZERO, false).unwrap();
    b.set_serial_number(&serial.to_asn1_integer().unwrap()).unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(issuer.map(|i| i.cert.subject_name()).unwrap_or(&name)).unwrap();
    b.set_pubkey(key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap()).unwrap();
    b.set_not_after(&Asn1Time::days_from_now(2).unwrap()).unwrap();
    if ca {
        b.append_extension(BasicConstraints::new().critical().ca().build().unwrap()).unwrap();
        b.append_extension(KeyUsage::new().critical().key_cert_sign().crl_sign().build().unwrap()).unwrap();
    } else {
        b.append_extension(BasicConstraints::new().build().unwrap()).unwrap();
        b.append_extension(KeyUsage::new().critical().digital_signature().key_encipherment().build().unwrap()).unwrap();
        let eku = if server {
            ExtendedKeyUsage::new().server_auth().build()
        } else {
            ExtendedKeyUsage::new().client_auth().build()
        };
        b.append_extension(eku.unwrap()).unwrap();
        if server {
            let san = SubjectAlternativeName::new()
                .dns("localhost")
                .ip("127.0.0.1")
                .build(&b.x509v3_context(issuer.map(|i| i.cert.as_ref()), None))
                .unwrap();
            b.append_extension(san).unwrap();
        }
    }
    let signer = issuer.map(|i| &i.key).unwrap_or(key);
    b.sign(signer, MessageDigest::sha256()).unwrap();
    b.build()
}

pub struct Pki {
    pub ca: Issued,
    #[allow(dead_code)]
    pub server: Issued,
    pub client_a: Issued,
    pub client_b: Issued,
    pub rogue_client: Issued,
    pub dir: PathBuf,
}

impl Pki {
    pub fn new(dir: &Path) -> Pki {
        let ca_key = key();
        let ca = Issued { cert: build("ebond test CA", &ca_key, None, true, false), key: ca_key };
        let issue = |cn: &str, server: bool, by: &Issued| {
            let k = key();
            Issued { cert: build(cn, &k, Some(by), false, server), key: k }
        };
        let server = issue("localhost", true, &ca);
        let client_a = issue("acme gateway", false, &ca);
        let client_b = issue("someone else", false, &ca);
        let rogue_key = key();
        let rogue_ca = Issued { cert: build("rogue CA", &rogue_key, None, true, false), key: rogue_key };
        let rogue_client = issue("acme gateway", false, &rogue_ca);
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("ca.pem"), ca.cert_pem()).unwrap();
        let mut chain = server.cert_pem();
        chain.extend(ca.cert_pem());
        std::fs::write(dir.join("server.pem"), chain).unwrap();
        std::fs::write(dir.join("server.key"), server.key_pem()).unwrap();
        Pki { ca, server, client_a, client_b, rogue_client, dir: dir.to_path_buf() }
    }

    pub fn client(&self, identity: Option<&Issued>) -> reqwest::Client {
        let mut b = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&self.ca.cert_pem()).unwrap())
            .tls_built_in_root_certs(false);
        if let Some(i) = identity {
            b = b.identity(i.identity());
        }
        b.build().unwrap()
    }
}
