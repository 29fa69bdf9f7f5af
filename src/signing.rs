//! OpenPGP signing of `Release` files: key generation, loading and saving,
//! and the two signature forms apt fetches, `InRelease` (cleartext signature)
//! and `Release.gpg` (armored detached signature).
//!
//! This module owns the secret key material and the OpenPGP choices that old
//! and new apt clients agree on (DESIGN.md §3): version 4 keys (RFC 4880
//! profile, which gpgv 1.4, gpgv 2.2 and sqv all read), RSA-4096 by default,
//! SHA-512 digests (SHA-256 when a key cannot do SHA-512), keys that never
//! expire, and one signature per key so that several keys can sign during a
//! key rotation. It does not know about Release fields, file layout under
//! `public/` or the configuration file; `repo` decides what is signed, when
//! and with which key files.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::SystemTime;

use openpgp::armor;
use openpgp::cert::prelude::*;
use openpgp::crypto::{KeyPair, Signer as _};
use openpgp::parse::Parse;
use openpgp::policy::{Policy, StandardPolicy};
use openpgp::serialize::stream::{Armorer, Message, Signer as StreamSigner};
use openpgp::serialize::{Serialize, SerializeInto};
use openpgp::types::{HashAlgorithm, KeyFlags, RevocationStatus, Timestamp};
use openpgp::Profile;
use sequoia_openpgp as openpgp;

/// Digests used for signatures, best first. SHA-1 is never used: apt has
/// refused SHA-1 signatures since 1.2.7 and sqv refuses them too.
const HASHES: [HashAlgorithm; 2] = [HashAlgorithm::SHA512, HashAlgorithm::SHA256];

/// Errors from loading, generating, saving and using signing keys. The
/// message says what failed; [`SigningError::hint`] says how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    #[error("unknown key type `{given}`")]
    UnknownKeyType { given: String },

    #[error("cannot read the signing key {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("the signing key {path} is readable by group or others (mode {mode:04o})")]
    KeyFileTooOpen { path: PathBuf, mode: u32 },

    #[error("the signing key {path} is not a regular file")]
    NotAFile { path: PathBuf },

    #[error("{origin} is not an OpenPGP key")]
    Parse {
        origin: PathBuf,
        #[source]
        source: anyhow::Error,
    },

    #[error("{origin} holds {count} OpenPGP keys, expected exactly one")]
    SeveralKeys { origin: PathBuf, count: usize },

    #[error("{origin} holds only the public part of key {fingerprint}, not the secret key")]
    PublicKeyOnly {
        origin: PathBuf,
        fingerprint: String,
    },

    #[error("the secret key {fingerprint} in {origin} is protected by a passphrase; repoctl signs unattended and cannot use it")]
    Encrypted {
        origin: PathBuf,
        fingerprint: String,
    },

    #[error("the OpenPGP key {fingerprint} from {origin} cannot sign at {time}: {problem}")]
    KeyUnusable {
        origin: PathBuf,
        fingerprint: String,
        time: Timestamp,
        problem: KeyProblem,
    },

    #[error("cannot generate a {kind} key")]
    Generate {
        kind: KeyType,
        #[source]
        source: anyhow::Error,
    },

    #[error("{path} already exists; refusing to overwrite a key file")]
    AlreadyExists { path: PathBuf },

    #[error("cannot write the signing key {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("cannot serialize OpenPGP key {fingerprint}")]
    Serialize {
        fingerprint: String,
        #[source]
        source: anyhow::Error,
    },

    #[error("a signer needs at least one signing key")]
    NoKeys,

    #[error("the signing keys {fingerprints} share no acceptable digest (SHA512 or SHA256)")]
    NoCommonHash { fingerprints: String },

    #[error("signature time {time:?} cannot be written in OpenPGP (seconds since 1970 must fit in 32 bits)")]
    TimeOutOfRange { time: SystemTime },

    #[error("signing with {fingerprints} failed")]
    Sign {
        fingerprints: String,
        #[source]
        source: anyhow::Error,
    },

    #[error("no good signature by a key in {keyring}: {problem}")]
    Verify {
        keyring: PathBuf,
        problem: Box<VerifyProblem>,
    },
}

impl SigningError {
    /// How to fix it, when there is something to say.
    pub fn hint(&self) -> Option<String> {
        match self {
            SigningError::UnknownKeyType { .. } => Some(
                "use `rsa4096` (every apt client) or `ed25519` (only clients newer than Ubuntu 14.04)"
                    .into(),
            ),
            SigningError::KeyFileTooOpen { path, .. } => {
                Some(format!("run `chmod 600 {}`", path.display()))
            }
            SigningError::SeveralKeys { .. } => Some(
                "keep one key per file; list several key files to sign with several keys".into(),
            ),
            SigningError::PublicKeyOnly { fingerprint, .. } => Some(format!(
                "export the secret key, e.g. `gpg --armor --export-secret-keys {fingerprint} > FILE`"
            )),
            SigningError::Encrypted { fingerprint, .. } => Some(format!(
                "remove the passphrase (e.g. `gpg --passwd {fingerprint}`, empty passphrase), export the key again and protect the file with `chmod 600` instead"
            )),
            SigningError::KeyUnusable {
                fingerprint,
                problem,
                ..
            } => problem.hint(fingerprint),
            SigningError::AlreadyExists { .. } => Some(
                "choose another path, or move the old key away if you really mean to replace it"
                    .into(),
            ),
            SigningError::NoCommonHash { .. } => Some("sign with RSA or Ed25519 keys".into()),
            SigningError::Verify { problem, .. } => Some(problem.hint()),
            SigningError::Read { .. }
            | SigningError::NotAFile { .. }
            | SigningError::Parse { .. }
            | SigningError::Generate { .. }
            | SigningError::Write { .. }
            | SigningError::Serialize { .. }
            | SigningError::NoKeys
            | SigningError::TimeOutOfRange { .. }
            | SigningError::Sign { .. } => None,
        }
    }
}

/// Why a key cannot sign at a given time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyProblem {
    /// The signature time is before the key's creation time.
    NotYetCreated { created: Timestamp },
    /// The key is revoked.
    Revoked,
    /// The key (or every signing-capable key in it) has expired.
    Expired { detail: String },
    /// sequoia's standard policy, which sqv also applies, rejects the key
    /// (for example self-signatures made with SHA-1).
    Rejected { detail: String },
    /// No key in the certificate may sign (only certification or encryption).
    NoSigningKey,
    /// The secret key material cannot be used.
    BadSecret { detail: String },
}

impl KeyProblem {
    fn hint(&self, fingerprint: &str) -> Option<String> {
        match self {
            KeyProblem::NotYetCreated { .. } => {
                Some("check the clock: a signature cannot predate its key".into())
            }
            KeyProblem::Revoked => Some(
                "sign with a new key, published in key.asc before the old one is dropped".into(),
            ),
            KeyProblem::Expired { .. } => Some(format!(
                "extend the expiry (e.g. `gpg --quick-set-expire {fingerprint} 0`), export the key again and publish the new key.asc"
            )),
            KeyProblem::Rejected { .. } => Some(
                "current apt (sqv) would reject signatures by this key too; generate a new key".into(),
            ),
            KeyProblem::NoSigningKey => Some("use a key with a signing-capable (S) key".into()),
            KeyProblem::BadSecret { .. } => None,
        }
    }
}

impl fmt::Display for KeyProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyProblem::NotYetCreated { created } => {
                write!(f, "the key was created later, at {created}")
            }
            KeyProblem::Revoked => f.write_str("the key is revoked"),
            KeyProblem::Expired { detail } => write!(f, "the key has expired ({detail})"),
            KeyProblem::Rejected { detail } => {
                write!(
                    f,
                    "the key is not valid under the standard policy ({detail})"
                )
            }
            KeyProblem::NoSigningKey => f.write_str("it has no valid signing-capable key"),
            KeyProblem::BadSecret { detail } => write!(f, "its secret key is unusable ({detail})"),
        }
    }
}

/// The public-key algorithm of a generated key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum KeyType {
    /// RSA with a 4096-bit modulus: verified by every apt client, including
    /// the gpgv 1.4 of Ubuntu 12.04 and 14.04.
    #[default]
    Rsa4096,
    /// Ed25519 (v4 EdDSA): small and fast, for fleets without precise or
    /// trusty clients (gpgv 1.4 cannot verify it).
    Ed25519,
}

impl KeyType {
    /// The name used on the command line and in `repoctl.toml`.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::Rsa4096 => "rsa4096",
            KeyType::Ed25519 => "ed25519",
        }
    }

    fn cipher_suite(self) -> CipherSuite {
        match self {
            KeyType::Rsa4096 => CipherSuite::RSA4k,
            KeyType::Ed25519 => CipherSuite::Cv25519,
        }
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KeyType {
    type Err = SigningError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "rsa4096" => Ok(KeyType::Rsa4096),
            "ed25519" => Ok(KeyType::Ed25519),
            _ => Err(SigningError::UnknownKeyType {
                given: s.to_owned(),
            }),
        }
    }
}

/// An OpenPGP certificate together with the secret key that signs.
///
/// `Debug` shows the fingerprint only: secret material never reaches a log.
#[derive(Clone)]
pub struct SigningKey {
    cert: Cert,
    fingerprint: String,
    /// Where the key came from, for error messages.
    origin: PathBuf,
    /// The public certificate, serialized once when the key is made or
    /// loaded, so that exporting it cannot fail later.
    public_binary: Vec<u8>,
    public_armored: Vec<u8>,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Generates a key that never expires, whose primary key certifies and
    /// signs (no subkeys: the simplest shape for gpgv 1.4), with one user id.
    pub fn generate(kind: KeyType, user_id: &str) -> Result<Self, SigningError> {
        Self::generate_with(kind, user_id, None)
    }

    /// Like [`SigningKey::generate`], with an explicit creation time (for
    /// reproducible fixtures, and keys that must sign an earlier `Date`).
    pub fn generate_at(
        kind: KeyType,
        user_id: &str,
        created: SystemTime,
    ) -> Result<Self, SigningError> {
        Self::generate_with(kind, user_id, Some(created))
    }

    fn generate_with(
        kind: KeyType,
        user_id: &str,
        created: Option<SystemTime>,
    ) -> Result<Self, SigningError> {
        let generate = || -> openpgp::Result<Cert> {
            let (cert, _revocation) = CertBuilder::new()
                .set_profile(Profile::RFC4880)?
                .set_cipher_suite(kind.cipher_suite())
                .set_primary_key_flags(KeyFlags::empty().set_certification().set_signing())
                // Explicit, though `new()` has no expiry either: a repository
                // key that expires silently breaks every client.
                .set_validity_period(None)
                .set_creation_time(created)
                .add_userid(user_id)
                .generate()?;
            Ok(cert)
        };
        let cert = generate().map_err(|source| SigningError::Generate { kind, source })?;
        Self::from_cert(cert, Path::new("(generated key)"))
    }

    /// Reads a key from armored (or binary) OpenPGP bytes. The key must hold
    /// an unprotected secret key that can sign now. `origin` names where the
    /// bytes came from, for error messages.
    pub fn from_armored(bytes: &[u8], origin: &Path) -> Result<Self, SigningError> {
        let parse_error = |source| SigningError::Parse {
            origin: origin.to_owned(),
            source,
        };
        let mut certs = Vec::new();
        for cert in CertParser::from_bytes(bytes).map_err(parse_error)? {
            certs.push(cert.map_err(parse_error)?);
        }
        let cert = match certs.len() {
            1 => certs.remove(0),
            0 => return Err(parse_error(anyhow::anyhow!("no OpenPGP certificate found"))),
            count => {
                return Err(SigningError::SeveralKeys {
                    origin: origin.to_owned(),
                    count,
                })
            }
        };
        let fingerprint = cert.fingerprint().to_hex();
        if !cert.is_tsk() {
            return Err(SigningError::PublicKeyOnly {
                origin: origin.to_owned(),
                fingerprint,
            });
        }
        let key = Self::from_cert(cert, origin)?;
        key.keypair(SystemTime::now())?;
        Ok(key)
    }

    /// Reads a key file. Refuses a file that group or others can read.
    pub fn load(path: &Path) -> Result<Self, SigningError> {
        let mut file = open_secret_key_file(path)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(|source| SigningError::Read {
                path: path.to_owned(),
                source,
            })?;
        Self::from_armored(&bytes, path)
    }

    /// Checks a key file as [`SigningKey::load`] does (a regular file that
    /// only its owner may access) without parsing it: cheap enough to run
    /// before every change to a repository.
    pub fn check_file(path: &Path) -> Result<(), SigningError> {
        open_secret_key_file(path).map(drop)
    }

    /// Writes the armored secret key to a new file created with mode 0600
    /// (never readable by others, not even briefly). Refuses to overwrite.
    pub fn save_secret(&self, path: &Path) -> Result<(), SigningError> {
        let armored =
            self.cert
                .as_tsk()
                .armored()
                .to_vec()
                .map_err(|source| SigningError::Serialize {
                    fingerprint: self.fingerprint.clone(),
                    source,
                })?;
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|source| match source.kind() {
                io::ErrorKind::AlreadyExists => SigningError::AlreadyExists {
                    path: path.to_owned(),
                },
                _ => SigningError::Write {
                    path: path.to_owned(),
                    source,
                },
            })?;
        let written = file.write_all(&armored).and_then(|()| file.sync_all());
        if let Err(source) = written {
            // Do not leave a truncated key behind that a later run would load.
            drop(file);
            let _ = std::fs::remove_file(path);
            return Err(SigningError::Write {
                path: path.to_owned(),
                source,
            });
        }
        Ok(())
    }

    /// The armored public certificate, as published in `public/key.asc`.
    pub fn public_armored(&self) -> Vec<u8> {
        self.public_armored.clone()
    }

    /// The binary public certificate (what `gpg --export` writes): the form
    /// `apt-key`-era clients put in `/etc/apt/trusted.gpg.d/NAME.gpg`.
    pub fn public_binary(&self) -> Vec<u8> {
        self.public_binary.clone()
    }

    /// The primary key's fingerprint, 40 uppercase hex digits.
    pub fn fingerprint(&self) -> String {
        self.fingerprint.clone()
    }

    /// The user ids, as written in the certificate.
    pub fn user_ids(&self) -> Vec<String> {
        self.cert
            .userids()
            .map(|uid| String::from_utf8_lossy(uid.userid().value()).into_owned())
            .collect()
    }

    /// The sequoia certificate (public and secret parts).
    pub fn cert(&self) -> &Cert {
        &self.cert
    }

    fn from_cert(cert: Cert, origin: &Path) -> Result<Self, SigningError> {
        let fingerprint = cert.fingerprint().to_hex();
        let serialize_error = |source| SigningError::Serialize {
            fingerprint: fingerprint.clone(),
            source,
        };
        let public_binary = cert.to_vec().map_err(serialize_error)?;
        let public_armored = cert.armored().to_vec().map_err(serialize_error)?;
        Ok(SigningKey {
            cert,
            fingerprint,
            origin: origin.to_owned(),
            public_binary,
            public_armored,
        })
    }

    /// The key pair that signs at `time`: the newest valid signing-capable
    /// key with an unprotected secret, as gpg would choose.
    fn keypair(&self, time: SystemTime) -> Result<KeyPair, SigningError> {
        let stamp = Timestamp::try_from(time).map_err(|_| SigningError::TimeOutOfRange { time })?;
        let unusable = |problem: KeyProblem| SigningError::KeyUnusable {
            origin: self.origin.clone(),
            fingerprint: self.fingerprint.clone(),
            time: stamp,
            problem,
        };
        let policy: &dyn Policy = &StandardPolicy::new();
        let created = self.cert.primary_key().key().creation_time();
        if time < created {
            let created = Timestamp::try_from(created)
                .map_err(|_| SigningError::TimeOutOfRange { time: created })?;
            return Err(unusable(KeyProblem::NotYetCreated { created }));
        }
        let valid = self.cert.with_policy(policy, time).map_err(|e| {
            unusable(KeyProblem::Rejected {
                detail: format!("{e:#}"),
            })
        })?;
        if let RevocationStatus::Revoked(_) = valid.revocation_status() {
            return Err(unusable(KeyProblem::Revoked));
        }
        if let Err(e) = valid.alive() {
            return Err(unusable(KeyProblem::Expired {
                detail: format!("{e:#}"),
            }));
        }
        let signing = || valid.keys().supported().revoked(false).for_signing();
        let chosen = signing()
            .alive()
            .secret()
            .filter(|ka| ka.key().has_unencrypted_secret())
            .max_by_key(|ka| ka.key().creation_time());
        match chosen {
            Some(ka) => ka.key().clone().into_keypair().map_err(|e| {
                unusable(KeyProblem::BadSecret {
                    detail: format!("{e:#}"),
                })
            }),
            None if signing().alive().secret().next().is_some() => Err(SigningError::Encrypted {
                origin: self.origin.clone(),
                fingerprint: self.fingerprint.clone(),
            }),
            None if signing().alive().next().is_some() => Err(SigningError::PublicKeyOnly {
                origin: self.origin.clone(),
                fingerprint: self.fingerprint.clone(),
            }),
            None if signing().next().is_some() => Err(unusable(KeyProblem::Expired {
                detail: "every signing-capable key has expired".into(),
            })),
            None => Err(unusable(KeyProblem::NoSigningKey)),
        }
    }
}

/// Signs with one or more keys at once (several during a key rotation).
#[derive(Debug, Clone)]
pub struct Signer {
    keys: Vec<SigningKey>,
    public_armored: Vec<u8>,
    public_binary: Vec<u8>,
}

impl Signer {
    /// A signer for `keys`, in the order given (at least one).
    pub fn new(keys: Vec<SigningKey>) -> Result<Self, SigningError> {
        if keys.is_empty() {
            return Err(SigningError::NoKeys);
        }
        let public_binary: Vec<u8> = keys.iter().flat_map(|k| k.public_binary.clone()).collect();
        let public_armored = armor_keyring(&keys).map_err(|source| SigningError::Serialize {
            fingerprint: fingerprints(&keys),
            source,
        })?;
        Ok(Signer {
            keys,
            public_armored,
            public_binary,
        })
    }

    /// The signing keys.
    pub fn keys(&self) -> &[SigningKey] {
        &self.keys
    }

    /// An `InRelease` file: `text` in the cleartext signature framework,
    /// one signature per key, made now.
    pub fn clearsign(&self, text: &[u8]) -> Result<Vec<u8>, SigningError> {
        self.clearsign_at(text, SystemTime::now())
    }

    /// Like [`Signer::clearsign`], with the signature creation time given
    /// (use the Release `Date`).
    ///
    /// The cleartext framework does not sign trailing spaces and tabs, so
    /// they are removed from the output. Otherwise the signed text is `text`
    /// byte for byte, final newline included (sequoia writes an extra line
    /// break before the signature), and that is what apt extracts from the
    /// `InRelease`. A Release file has no trailing blanks.
    pub fn clearsign_at(&self, text: &[u8], time: SystemTime) -> Result<Vec<u8>, SigningError> {
        self.sign(text, time, Mode::Cleartext)
    }

    /// A `Release.gpg` file: an armored detached signature of `text`, one
    /// signature per key, made now.
    pub fn detached(&self, text: &[u8]) -> Result<Vec<u8>, SigningError> {
        self.detached_at(text, SystemTime::now())
    }

    /// Like [`Signer::detached`], with the signature creation time given.
    pub fn detached_at(&self, text: &[u8], time: SystemTime) -> Result<Vec<u8>, SigningError> {
        self.sign(text, time, Mode::Detached)
    }

    /// All public certificates in one armored block, for `public/key.asc`.
    pub fn public_keys_armored(&self) -> Vec<u8> {
        self.public_armored.clone()
    }

    /// All public certificates, binary (a keyring for `trusted.gpg.d`).
    pub fn public_keys_binary(&self) -> Vec<u8> {
        self.public_binary.clone()
    }

    fn sign(&self, text: &[u8], time: SystemTime, mode: Mode) -> Result<Vec<u8>, SigningError> {
        // OpenPGP stores seconds in 32 bits; round down so that what we check
        // the keys against is what is written.
        let time: SystemTime = Timestamp::try_from(time)
            .map_err(|_| SigningError::TimeOutOfRange { time })?
            .into();
        let mut keypairs = Vec::with_capacity(self.keys.len());
        for key in &self.keys {
            keypairs.push(key.keypair(time)?);
        }
        let hash = HASHES
            .into_iter()
            .find(|hash| {
                keypairs
                    .iter()
                    .all(|kp| kp.acceptable_hashes().contains(hash))
            })
            .ok_or_else(|| SigningError::NoCommonHash {
                fingerprints: fingerprints(&self.keys),
            })?;
        stream_sign(text, time, mode, hash, keypairs).map_err(|source| SigningError::Sign {
            fingerprints: fingerprints(&self.keys),
            source,
        })
    }
}

#[derive(Clone, Copy)]
enum Mode {
    Cleartext,
    Detached,
}

fn stream_sign(
    text: &[u8],
    time: SystemTime,
    mode: Mode,
    hash: HashAlgorithm,
    keypairs: Vec<KeyPair>,
) -> openpgp::Result<Vec<u8>> {
    let mut keypairs = keypairs.into_iter();
    let first = keypairs
        .next()
        .ok_or_else(|| anyhow::anyhow!("no signing key"))?;
    let mut sink = Vec::new();
    {
        let message = Message::new(&mut sink);
        let message = match mode {
            // The cleartext signer armors the signatures itself.
            Mode::Cleartext => message,
            Mode::Detached => Armorer::new(message).kind(armor::Kind::Signature).build()?,
        };
        let mut signer = StreamSigner::new(message, first)?;
        for keypair in keypairs {
            signer = signer.add_signer(keypair)?;
        }
        let signer = signer.hash_algo(hash)?.creation_time(time);
        let signer = match mode {
            Mode::Cleartext => signer.cleartext(),
            Mode::Detached => signer.detached(),
        };
        let mut message = signer.build()?;
        message.write_all(text)?;
        message.finalize()?;
    }
    Ok(sink)
}

/// One armored block holding every certificate, like `gpg --armor --export A B`.
/// Opens a secret key file, refusing one that is not a regular file or that
/// group or others may access.
fn open_secret_key_file(path: &Path) -> Result<File, SigningError> {
    let read_error = |source| SigningError::Read {
        path: path.to_owned(),
        source,
    };
    // Check the mode of the file actually opened, not of a path that may
    // change in between.
    let file = File::open(path).map_err(read_error)?;
    let metadata = file.metadata().map_err(read_error)?;
    if !metadata.is_file() {
        return Err(SigningError::NotAFile {
            path: path.to_owned(),
        });
    }
    let mode = metadata.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(SigningError::KeyFileTooOpen {
            path: path.to_owned(),
            mode,
        });
    }
    Ok(file)
}

fn armor_keyring(keys: &[SigningKey]) -> openpgp::Result<Vec<u8>> {
    let mut sink = Vec::new();
    {
        let headers: Vec<(&str, String)> = keys
            .iter()
            .map(|key| ("Comment", key.fingerprint.clone()))
            .collect();
        let mut writer = armor::Writer::with_headers(&mut sink, armor::Kind::PublicKey, headers)?;
        for key in keys {
            key.cert.serialize(&mut writer)?;
        }
        writer.finalize()?;
    }
    Ok(sink)
}

fn fingerprints(keys: &[SigningKey]) -> String {
    keys.iter()
        .map(|k| k.fingerprint.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

// Verification of what a repository serves: the other side of `clearsign`.

use openpgp::parse::stream::{
    MessageLayer, MessageStructure, VerificationError, VerificationHelper, VerifierBuilder,
};

/// The largest key file [`Keyring::load`] reads; real keyrings are a few KiB.
const MAX_KEYRING_BYTES: u64 = 16 << 20;

/// Why a cleartext-signed message (an `InRelease`) was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyProblem {
    /// The bytes are not one cleartext-signed message, as apt requires:
    /// something else precedes `-----BEGIN PGP SIGNED MESSAGE-----`,
    /// follows the signature, or there is more than one message.
    NotClearsigned { detail: String },
    /// The message or its signatures cannot be parsed, or carry no signature.
    Malformed { detail: String },
    /// Signed only by keys that are not in the keyring (fingerprints or key
    /// ids, as the signatures name them).
    UnknownSigners { issuers: Vec<String> },
    /// Signed by a key in the keyring, but no such signature is good. Each
    /// detail names the key and the reason. `altered` is true when at least
    /// one signature does not match the text, i.e. the text was changed
    /// after signing.
    Invalid { details: Vec<String>, altered: bool },
}

impl fmt::Display for VerifyProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VerifyProblem::NotClearsigned { detail } => {
                write!(f, "it is not a cleartext-signed message ({detail})")
            }
            VerifyProblem::Malformed { detail } => {
                write!(f, "its signature cannot be read ({detail})")
            }
            VerifyProblem::UnknownSigners { issuers } if issuers.is_empty() => {
                f.write_str("its signatures name no issuer key")
            }
            VerifyProblem::UnknownSigners { issuers } => {
                write!(
                    f,
                    "it is signed by {}, not by a key in the keyring",
                    issuers.join(", ")
                )
            }
            VerifyProblem::Invalid { details, .. } => f.write_str(&details.join("; ")),
        }
    }
}

impl VerifyProblem {
    fn hint(&self) -> String {
        match self {
            VerifyProblem::NotClearsigned { .. } | VerifyProblem::Malformed { .. } => {
                "check the URL: the server did not answer with an InRelease file (a proxy or a login page may have answered instead)".into()
            }
            VerifyProblem::UnknownSigners { .. } => {
                "the repository is not signed by this key; check --key (a repoctl repository publishes its key as key.asc)".into()
            }
            VerifyProblem::Invalid { altered: true, .. } => {
                "the text was changed after it was signed; do not trust this copy, fetch it from the repository itself".into()
            }
            VerifyProblem::Invalid { altered: false, .. } => {
                "the repository's key cannot vouch for this signature (expired, revoked or too weak); get its current key".into()
            }
        }
    }
}

/// The public keys that a downloaded `InRelease` must be signed by (the
/// `--key` of a command): one or more certificates, armored or binary.
#[derive(Debug, Clone)]
pub struct Keyring {
    certs: Vec<Cert>,
    /// Where the keys came from, for error messages.
    origin: PathBuf,
}

impl Keyring {
    /// Reads a key file (`key.asc`, or a binary `trusted.gpg.d` keyring).
    /// Secret keys are accepted too; only their public parts are used.
    pub fn load(path: &Path) -> Result<Keyring, SigningError> {
        let read_error = |source| SigningError::Read {
            path: path.to_owned(),
            source,
        };
        let file = File::open(path).map_err(read_error)?;
        let mut bytes = Vec::new();
        file.take(MAX_KEYRING_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(read_error)?;
        if bytes.len() as u64 > MAX_KEYRING_BYTES {
            return Err(SigningError::Parse {
                origin: path.to_owned(),
                source: anyhow::anyhow!("larger than {MAX_KEYRING_BYTES} bytes"),
            });
        }
        Keyring::from_bytes(&bytes, path)
    }

    /// Parses one or more certificates. `origin` names where the bytes came
    /// from, for error messages.
    pub fn from_bytes(bytes: &[u8], origin: &Path) -> Result<Keyring, SigningError> {
        let parse_error = |source| SigningError::Parse {
            origin: origin.to_owned(),
            source,
        };
        let mut certs = Vec::new();
        for cert in CertParser::from_bytes(bytes).map_err(parse_error)? {
            certs.push(cert.map_err(parse_error)?);
        }
        if certs.is_empty() {
            return Err(parse_error(anyhow::anyhow!("no OpenPGP certificate found")));
        }
        Ok(Keyring {
            certs,
            origin: origin.to_owned(),
        })
    }

    /// The primary fingerprints, 40 uppercase hex digits each.
    pub fn fingerprints(&self) -> Vec<String> {
        self.certs
            .iter()
            .map(|c| c.fingerprint().to_hex())
            .collect()
    }

    /// Verifies an `InRelease` (cleartext signature framework) now, and
    /// returns the signed text as apt extracts it: dash-escaping undone, the
    /// line break before the signature not included (so a Release signed by
    /// [`Signer::clearsign`] comes back byte for byte).
    ///
    /// Accepted when at least one signature is good: made by a key of this
    /// keyring that was valid and signing-capable when the signature was
    /// made, not expired now, with a digest sequoia's standard policy (the
    /// one sqv applies) accepts, so SHA-1 is refused. Other signatures, by
    /// unknown keys for instance, are ignored, as apt does.
    pub fn verify_cleartext(&self, signed: &[u8]) -> Result<Vec<u8>, SigningError> {
        self.verify_cleartext_at(signed, SystemTime::now())
    }

    /// Like [`Keyring::verify_cleartext`], judging expiry at `time`.
    pub fn verify_cleartext_at(
        &self,
        signed: &[u8],
        time: SystemTime,
    ) -> Result<Vec<u8>, SigningError> {
        let refuse = |problem| SigningError::Verify {
            keyring: self.origin.clone(),
            problem: Box::new(problem),
        };
        check_cleartext_framing(signed).map_err(refuse)?;
        let policy = StandardPolicy::new();
        let mut problem = None;
        let helper = KeyringHelper {
            certs: &self.certs,
            time,
            problem: &mut problem,
        };
        let verified = (move || -> openpgp::Result<Vec<u8>> {
            let mut verifier =
                VerifierBuilder::from_bytes(signed)?.with_policy(&policy, time, helper)?;
            let mut text = Vec::new();
            verifier.read_to_end(&mut text)?;
            Ok(text)
        })();
        match (verified, problem) {
            (Ok(text), None) => Ok(text),
            (_, Some(problem)) => Err(refuse(problem)),
            (Err(e), None) => Err(refuse(VerifyProblem::Malformed {
                detail: format!("{e:#}"),
            })),
        }
    }
}

/// Verifies `signed` (an `InRelease`) against the certificates in
/// `keyring` (armored or binary) and returns the signed text; see
/// [`Keyring::verify_cleartext`].
pub fn verify_cleartext(signed: &[u8], keyring: &[u8]) -> Result<Vec<u8>, SigningError> {
    Keyring::from_bytes(keyring, Path::new("(keyring)"))?.verify_cleartext(signed)
}

/// apt's framing rules (`SplitClearSignedFile`): blank lines may precede the
/// message and follow the signature, nothing else; exactly one message and
/// one signature block. (Inside the message, a line starting with `-` is
/// dash-escaped, so these armor lines cannot be part of the signed text.)
fn check_cleartext_framing(signed: &[u8]) -> Result<(), VerifyProblem> {
    const BEGIN: &[u8] = b"-----BEGIN PGP SIGNED MESSAGE-----";
    const SIGNATURE: &[u8] = b"-----BEGIN PGP SIGNATURE-----";
    const END: &[u8] = b"-----END PGP SIGNATURE-----";
    let not = |detail: String| VerifyProblem::NotClearsigned { detail };
    let lines: Vec<&[u8]> = signed
        .split(|&b| b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .collect();
    let is_blank = |line: &&[u8]| line.iter().all(u8::is_ascii_whitespace);
    let Some(first) = lines.iter().position(|line| !is_blank(line)) else {
        return Err(not("it is empty".into()));
    };
    if lines[first] != BEGIN {
        let start: String = String::from_utf8_lossy(lines[first])
            .chars()
            .take(40)
            .collect();
        return Err(not(format!("it starts with {start:?}")));
    }
    let count = |marker: &[u8]| lines.iter().filter(|line| **line == marker).count();
    match (count(BEGIN), count(SIGNATURE), count(END)) {
        (1, 1, 1) => {}
        (1, 0, _) | (1, _, 0) => return Err(not("it has no complete signature block".into())),
        _ => {
            return Err(not(
                "it holds more than one signed message or signature".into()
            ))
        }
    }
    let last = lines.iter().rposition(|line| !is_blank(line));
    if last.map(|at| lines[at]) != Some(END) {
        return Err(not("something follows the signature".into()));
    }
    Ok(())
}

/// Hands the keyring to sequoia and records why verification failed.
struct KeyringHelper<'a> {
    certs: &'a [Cert],
    time: SystemTime,
    problem: &'a mut Option<VerifyProblem>,
}

impl VerificationHelper for KeyringHelper<'_> {
    fn get_certs(&mut self, _ids: &[openpgp::KeyHandle]) -> openpgp::Result<Vec<Cert>> {
        Ok(self.certs.to_vec())
    }

    fn check(&mut self, structure: MessageStructure) -> openpgp::Result<()> {
        let mut unknown = Vec::new();
        let mut details = Vec::new();
        let mut altered = false;
        let mut signatures = 0;
        for layer in structure {
            let results = match layer {
                MessageLayer::SignatureGroup { results } => results,
                MessageLayer::Compression { .. } | MessageLayer::Encryption { .. } => {
                    *self.problem = Some(VerifyProblem::Malformed {
                        detail: "a compressed or encrypted layer, not a cleartext signature".into(),
                    });
                    return Err(anyhow::anyhow!("unexpected message structure"));
                }
            };
            for result in results {
                signatures += 1;
                let error = match result {
                    Ok(_) => return Ok(()),
                    Err(error) => error,
                };
                match error {
                    VerificationError::MissingKey { sig } => unknown.extend(
                        sig.get_issuers()
                            .iter()
                            .map(|issuer| issuer.to_hex())
                            .filter(|hex| !unknown.contains(hex))
                            .collect::<Vec<_>>(),
                    ),
                    VerificationError::BadSignature { sig, ka, error } => {
                        let fingerprint = ka.cert().fingerprint().to_hex();
                        match error.downcast_ref::<openpgp::Error>() {
                            Some(
                                openpgp::Error::BadSignature(_)
                                | openpgp::Error::ManipulatedMessage,
                            ) => {
                                altered = true;
                                details.push(format!(
                                    "the signature by {fingerprint} does not match the signed text"
                                ));
                            }
                            _ if sig.signature_alive(self.time, None).is_err() => {
                                details.push(format!(
                                    "the signature by {fingerprint} is expired or not yet valid ({error:#})"
                                ));
                            }
                            _ => details.push(format!(
                                "the signature by {fingerprint} is refused ({error:#})"
                            )),
                        }
                    }
                    VerificationError::BadKey { ka, error, .. } => details.push(format!(
                        "the key {} could not sign then ({error:#})",
                        ka.cert().fingerprint().to_hex()
                    )),
                    VerificationError::UnboundKey { cert, error, .. } => details.push(format!(
                        "the key {} is not valid at the signature's time ({error:#})",
                        cert.fingerprint().to_hex()
                    )),
                    VerificationError::MalformedSignature { error, .. } => {
                        details.push(format!("a signature is malformed ({error:#})"));
                    }
                    VerificationError::UnknownSignature { sig } => {
                        details.push(format!("a signature cannot be parsed ({})", sig.error()));
                    }
                    // The enum is non-exhaustive.
                    other => details.push(other.to_string()),
                }
            }
        }
        // A signature names its issuer by fingerprint and by key id; keep
        // the key id only when no fingerprint ends with it.
        let fingerprints: Vec<String> = unknown.iter().filter(|h| h.len() > 16).cloned().collect();
        unknown.retain(|h| h.len() > 16 || !fingerprints.iter().any(|f| f.ends_with(h.as_str())));
        *self.problem = Some(if signatures == 0 {
            VerifyProblem::Malformed {
                detail: "it carries no signature".into(),
            }
        } else if details.is_empty() {
            VerifyProblem::UnknownSigners { issuers: unknown }
        } else {
            if !unknown.is_empty() {
                details.push(format!(
                    "also signed by unknown keys {}",
                    unknown.join(", ")
                ));
            }
            VerifyProblem::Invalid { details, altered }
        });
        Err(anyhow::anyhow!("no good signature"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn ed25519(created: u64) -> SigningKey {
        SigningKey::generate_at(KeyType::Ed25519, "unit <unit@repoctl.invalid>", at(created))
            .expect("generate")
    }

    #[test]
    fn key_type_parses_its_names_only() {
        assert_eq!("rsa4096".parse::<KeyType>().ok(), Some(KeyType::Rsa4096));
        assert_eq!("ed25519".parse::<KeyType>().ok(), Some(KeyType::Ed25519));
        for name in [KeyType::Rsa4096, KeyType::Ed25519] {
            assert_eq!(name.to_string().parse::<KeyType>().ok(), Some(name));
        }
        let err = "RSA".parse::<KeyType>().expect_err("unknown");
        assert!(err.to_string().contains("unknown key type `RSA`"), "{err}");
        assert_eq!(KeyType::default(), KeyType::Rsa4096);
    }

    #[test]
    fn generated_key_never_expires_and_signs_with_its_primary() {
        let key = ed25519(1_600_000_000);
        let fpr = key.fingerprint();
        assert_eq!(fpr.len(), 40);
        assert_eq!(fpr, fpr.to_uppercase());
        let policy = StandardPolicy::new();
        let valid = key
            .cert()
            .with_policy(&policy, at(4_000_000_000))
            .expect("valid in 2096");
        assert_eq!(valid.primary_key().key_expiration_time(), None);
        assert!(valid.alive().is_ok());
        assert_eq!(key.cert().keys().count(), 1, "no subkeys");
        assert!(valid.primary_key().for_signing());
        assert_eq!(
            key.user_ids(),
            vec!["unit <unit@repoctl.invalid>".to_owned()]
        );
        assert_eq!(key.cert().primary_key().key().version(), 4);
    }

    #[test]
    fn debug_shows_no_secret() {
        let key = ed25519(1_600_000_000);
        let shown = format!("{key:?}");
        assert!(shown.contains(&key.fingerprint()), "{shown}");
        assert!(!shown.to_lowercase().contains("secret"), "{shown}");
    }

    #[test]
    fn armored_round_trip_keeps_the_secret() {
        let key = ed25519(1_600_000_000);
        let armored = key.cert().as_tsk().armored().to_vec().expect("armor");
        let again = SigningKey::from_armored(&armored, Path::new("mem")).expect("reload");
        assert_eq!(again.fingerprint(), key.fingerprint());
        assert!(again.cert().is_tsk());
    }

    #[test]
    fn public_key_is_refused_with_a_hint() {
        let key = ed25519(1_600_000_000);
        let err = SigningKey::from_armored(&key.public_armored(), Path::new("/k/pub.asc"))
            .expect_err("public only");
        assert!(matches!(err, SigningError::PublicKeyOnly { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains("/k/pub.asc"), "{msg}");
        assert!(err.hint().expect("hint").contains("--export-secret-keys"));
    }

    #[test]
    fn passphrase_protected_key_is_refused() {
        let (cert, _) = CertBuilder::new()
            .set_cipher_suite(CipherSuite::Cv25519)
            .set_primary_key_flags(KeyFlags::empty().set_certification().set_signing())
            .add_userid("locked <locked@repoctl.invalid>")
            .set_password(Some("hunter2".into()))
            .generate()
            .expect("generate");
        let armored = cert.as_tsk().armored().to_vec().expect("armor");
        let err =
            SigningKey::from_armored(&armored, Path::new("/k/locked.asc")).expect_err("encrypted");
        assert!(matches!(err, SigningError::Encrypted { .. }), "{err:?}");
        assert!(err.to_string().contains("passphrase"), "{err}");
        assert!(err.hint().expect("hint").contains("gpg --passwd"));
    }

    #[test]
    fn garbage_and_several_keys_are_refused() {
        let err = SigningKey::from_armored(b"not a key", Path::new("/k/x")).expect_err("garbage");
        assert!(matches!(err, SigningError::Parse { .. }), "{err:?}");
        assert!(err.to_string().contains("/k/x"));

        let (a, b) = (ed25519(1_600_000_000), ed25519(1_600_000_001));
        let mut both = a.cert().as_tsk().to_vec().expect("a");
        both.extend(b.cert().as_tsk().to_vec().expect("b"));
        let err = SigningKey::from_armored(&both, Path::new("/k/two")).expect_err("two");
        assert!(
            matches!(err, SigningError::SeveralKeys { count: 2, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn expired_key_is_refused() {
        let (cert, _) = CertBuilder::new()
            .set_cipher_suite(CipherSuite::Cv25519)
            .set_primary_key_flags(KeyFlags::empty().set_certification().set_signing())
            .add_userid("old <old@repoctl.invalid>")
            .set_creation_time(at(1_500_000_000))
            .set_validity_period(Duration::from_secs(86_400))
            .generate()
            .expect("generate");
        let armored = cert.as_tsk().armored().to_vec().expect("armor");
        let err = SigningKey::from_armored(&armored, Path::new("k")).expect_err("expired");
        assert!(
            matches!(
                &err,
                SigningError::KeyUnusable {
                    problem: KeyProblem::Expired { .. },
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("expired"), "{err}");
        assert!(err.hint().expect("hint").contains("--quick-set-expire"));
    }

    /// Callers wrap this error in theirs; clippy's `result_large_err`
    /// (128 bytes) fails their build when it grows.
    #[test]
    fn error_stays_small() {
        assert!(std::mem::size_of::<SigningError>() <= 104);
    }

    #[test]
    fn signer_needs_a_key() {
        assert!(matches!(Signer::new(vec![]), Err(SigningError::NoKeys)));
    }

    #[test]
    fn signature_cannot_predate_the_key() {
        let signer = Signer::new(vec![ed25519(1_600_000_000)]).expect("signer");
        let err = signer
            .clearsign_at(b"Origin: x\n", at(1_599_999_999))
            .expect_err("too early");
        assert!(err.to_string().contains("created later"), "{err}");
        assert!(err.hint().expect("hint").contains("clock"));
        signer
            .clearsign_at(b"Origin: x\n", at(1_600_000_000))
            .expect("same second is fine");
    }

    #[test]
    fn clearsign_has_sha512_header_and_one_signature_per_key() {
        let (a, b) = (ed25519(1_600_000_000), ed25519(1_600_000_000));
        let signer = Signer::new(vec![a.clone(), b.clone()]).expect("signer");
        let out = signer
            .clearsign_at(b"Origin: x\n", at(1_700_000_000))
            .expect("sign");
        let out = String::from_utf8(out).expect("ascii");
        assert!(
            out.starts_with("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\nOrigin: x\n"),
            "{out}"
        );
        let sig_start = out.find("-----BEGIN PGP SIGNATURE-----").expect("sig");
        let sigs = openpgp::PacketPile::from_bytes(&out.as_bytes()[sig_start..]).expect("parse");
        let mut issuers: Vec<String> = sigs
            .children()
            .map(|p| match p {
                openpgp::Packet::Signature(sig) => {
                    assert_eq!(sig.hash_algo(), HashAlgorithm::SHA512);
                    assert_eq!(sig.typ(), openpgp::types::SignatureType::Text);
                    assert_eq!(sig.signature_creation_time(), Some(at(1_700_000_000)));
                    sig.issuer_fingerprints().next().expect("issuer").to_hex()
                }
                other => panic!("unexpected packet {other:?}"),
            })
            .collect();
        issuers.sort();
        let mut expected = vec![a.fingerprint(), b.fingerprint()];
        expected.sort();
        assert_eq!(issuers, expected);
    }

    #[test]
    fn detached_is_an_armored_binary_signature() {
        let signer = Signer::new(vec![ed25519(1_600_000_000)]).expect("signer");
        let out = signer
            .detached_at(b"Origin: x\n", at(1_700_000_000))
            .expect("sign");
        assert!(out.starts_with(b"-----BEGIN PGP SIGNATURE-----\n"));
        let sigs = openpgp::PacketPile::from_bytes(&out).expect("parse");
        let kinds: Vec<_> = sigs
            .children()
            .map(|p| match p {
                openpgp::Packet::Signature(sig) => sig.typ(),
                other => panic!("unexpected packet {other:?}"),
            })
            .collect();
        assert_eq!(kinds, vec![openpgp::types::SignatureType::Binary]);
    }

    #[test]
    fn public_keyring_holds_every_key_without_secrets() {
        let (a, b) = (ed25519(1_600_000_000), ed25519(1_600_000_000));
        let signer = Signer::new(vec![a.clone(), b.clone()]).expect("signer");
        let armored = signer.public_keys_armored();
        assert_eq!(
            armored
                .windows(b"-----BEGIN PGP PUBLIC KEY BLOCK-----".len())
                .filter(|w| *w == b"-----BEGIN PGP PUBLIC KEY BLOCK-----")
                .count(),
            1
        );
        for bytes in [armored, signer.public_keys_binary()] {
            let certs: Vec<Cert> = CertParser::from_bytes(&bytes)
                .expect("parse")
                .collect::<openpgp::Result<_>>()
                .expect("certs");
            let fprs: Vec<String> = certs.iter().map(|c| c.fingerprint().to_hex()).collect();
            assert_eq!(fprs, vec![a.fingerprint(), b.fingerprint()]);
            assert!(certs.iter().all(|c| !c.is_tsk()));
        }
    }
}

#[cfg(test)]
mod verify_tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn ed25519(created: u64) -> SigningKey {
        SigningKey::generate_at(KeyType::Ed25519, "v <v@repoctl.invalid>", at(created))
            .expect("generate")
    }

    fn keyring(keys: &[&SigningKey]) -> Keyring {
        let bytes: Vec<u8> = keys.iter().flat_map(|k| k.public_armored()).collect();
        Keyring::from_bytes(&bytes, Path::new("/k/keyring.asc")).expect("keyring")
    }

    fn problem(err: SigningError) -> VerifyProblem {
        match err {
            SigningError::Verify { problem, .. } => *problem,
            other => panic!("expected a verification error, got {other:?}"),
        }
    }

    const TEXT: &[u8] =
        b"Origin: x\nDescription: a\n -----BEGIN PGP SIGNATURE-----\n- dash\nLast: 1\n";

    #[test]
    fn returns_the_signed_text_byte_for_byte() {
        let (a, b) = (ed25519(1_600_000_000), ed25519(1_600_000_000));
        let signed = Signer::new(vec![a.clone(), b.clone()])
            .expect("signer")
            .clearsign_at(TEXT, at(1_700_000_000))
            .expect("sign");
        // Either key of the two suffices; so does a keyring with more keys.
        for ring in [keyring(&[&a]), keyring(&[&b]), keyring(&[&ed25519(1), &b])] {
            assert_eq!(ring.verify_cleartext(&signed).expect("good"), TEXT);
        }
        // The free function, with a binary keyring.
        assert_eq!(
            verify_cleartext(&signed, &a.public_binary()).expect("good"),
            TEXT
        );
    }

    #[test]
    fn unknown_key_names_the_signer() {
        let (a, other) = (ed25519(1_600_000_000), ed25519(1_600_000_000));
        let signed = Signer::new(vec![a.clone()])
            .expect("signer")
            .clearsign_at(TEXT, at(1_700_000_000))
            .expect("sign");
        let err = keyring(&[&other])
            .verify_cleartext(&signed)
            .expect_err("wrong key");
        assert!(err.to_string().contains("/k/keyring.asc"), "{err}");
        assert!(err.hint().expect("hint").contains("--key"), "{err:?}");
        assert_eq!(
            problem(err),
            VerifyProblem::UnknownSigners {
                issuers: vec![a.fingerprint()]
            }
        );
    }

    #[test]
    fn a_changed_text_or_framing_is_refused() {
        let a = ed25519(1_600_000_000);
        let ring = keyring(&[&a]);
        let signed = Signer::new(vec![a.clone()])
            .expect("signer")
            .clearsign_at(TEXT, at(1_700_000_000))
            .expect("sign");
        let text = String::from_utf8(signed).expect("ascii");

        let changed = text.replacen("Origin: x", "Origin: y", 1);
        let found = problem(
            ring.verify_cleartext(changed.as_bytes())
                .expect_err("changed"),
        );
        assert!(
            matches!(&found, VerifyProblem::Invalid { altered: true, details } if details[0].contains(&a.fingerprint())),
            "{found:?}"
        );

        for (framed, expect) in [
            (format!("junk\n{text}"), "starts with \"junk\""),
            (format!("{text}junk\n"), "follows the signature"),
            (format!("{text}{text}"), "more than one"),
            (String::new(), "empty"),
            ("<html>login</html>".to_owned(), "<html>"),
        ] {
            match problem(ring.verify_cleartext(framed.as_bytes()).expect_err(expect)) {
                VerifyProblem::NotClearsigned { detail } => {
                    assert!(detail.contains(expect), "{detail} / {expect}")
                }
                other => panic!("{expect}: {other:?}"),
            }
        }
        // Blank lines around the message are allowed, as apt allows them.
        let padded = format!("\n\n{text}\n\n");
        assert_eq!(
            ring.verify_cleartext(padded.as_bytes()).expect("padded"),
            TEXT
        );
    }

    #[test]
    fn sha1_and_keys_expired_at_signing_time_are_refused() {
        let a = ed25519(1_600_000_000);
        let keypair = a.keypair(at(1_700_000_000)).expect("keypair");
        let sha1 = stream_sign(
            TEXT,
            at(1_700_000_000),
            Mode::Cleartext,
            HashAlgorithm::SHA1,
            vec![keypair],
        )
        .expect("sequoia can still make SHA-1 signatures");
        let found = problem(keyring(&[&a]).verify_cleartext(&sha1).expect_err("sha1"));
        assert!(
            matches!(&found, VerifyProblem::Invalid { altered: false, details } if details[0].contains("SHA1")),
            "{found:?}"
        );

        let (cert, _) = CertBuilder::new()
            .set_cipher_suite(CipherSuite::Cv25519)
            .set_primary_key_flags(KeyFlags::empty().set_certification().set_signing())
            .add_userid("old <old@repoctl.invalid>")
            .set_creation_time(at(1_500_000_000))
            .set_validity_period(Duration::from_secs(86_400))
            .generate()
            .expect("generate");
        let keypair = cert
            .primary_key()
            .key()
            .clone()
            .parts_into_secret()
            .and_then(|k| k.into_keypair())
            .expect("keypair");
        let late = stream_sign(
            TEXT,
            at(1_500_200_000),
            Mode::Cleartext,
            HashAlgorithm::SHA512,
            vec![keypair],
        )
        .expect("sign");
        let ring = Keyring::from_bytes(&cert.armored().to_vec().expect("armor"), Path::new("old"))
            .expect("keyring");
        let err = ring.verify_cleartext(&late).expect_err("expired key");
        assert!(
            err.hint().expect("hint").contains("get its current key"),
            "{err:?}"
        );
        assert!(matches!(
            problem(err),
            VerifyProblem::Invalid { altered: false, .. }
        ),);
    }

    #[test]
    fn keyring_must_hold_a_key() {
        let err = Keyring::from_bytes(b"", Path::new("/k/empty")).expect_err("empty");
        assert!(matches!(err, SigningError::Parse { .. }), "{err:?}");
        assert!(err.to_string().contains("/k/empty"), "{err}");
        let err = Keyring::load(Path::new("/nonexistent/key.asc")).expect_err("missing");
        assert!(matches!(err, SigningError::Read { .. }), "{err:?}");
    }
}
