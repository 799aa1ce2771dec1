//! `etcd://host:2379[,host2:2379]`: a snapshot streamed from a surviving member (Maintenance
//! Snapshot RPC) over mTLS, members tried in turn. The stream is what `etcdctl snapshot save`
//! writes: the bbolt database followed by the 32-byte sha256 the server appends as the last
//! message, so the staging file is a regular snapshot file with its trailer (verified again
//! by the restore).
//!
//! The gRPC client needs tokio: it stays inside this file, on a current-thread runtime,
//! behind the blocking [`SnapshotSource::fetch`].
use std::time::Duration;

use etcd_client::{Certificate, Client, ConnectOptions, Identity, TlsOptions};

use super::{Pem, SnapshotSource, SourceError, SourceOptions, Staging, TlsFiles};
use crate::progress::Progress;

/// Why one member gave no snapshot: try the next one, or stop (the host disk failed).
enum Attempt {
    Member(String),
    Fatal(SourceError),
}

/// Snapshot from a running member.
pub struct EtcdSource {
    endpoints: Vec<String>,
    tls: TlsFiles,
    connect_timeout: Duration,
    io_timeout: Duration,
}

impl EtcdSource {
    /// TLS with the members' CA (`tls.etcd_ca`, else `tls.ca`) and, for members that check
    /// client certificates (kubeadm's do), the client certificate and key. With no TLS
    /// material at all the members are asked over plain http (an etcd without TLS); only the
    /// sha256 the member appends to the stream then vouches for it.
    pub fn new(endpoints: Vec<String>, opts: &SourceOptions) -> Result<Self, SourceError> {
        let no_ca = opts.tls.etcd_ca.is_none() && opts.tls.ca.is_none();
        let no_client = opts.tls.cert.is_none() && opts.tls.key.is_none();
        if (no_ca && !no_client) || opts.tls.cert.is_some() != opts.tls.key.is_some() {
            return Err(SourceError::EtcdNeedsTls {
                url: format!("etcd://{}", endpoints.join(",")),
            });
        }
        if no_ca {
            log::warn!(
                "etcd://{}: no CA and no client certificate given or found; asking the members over plain http",
                endpoints.join(",")
            );
        }
        Ok(EtcdSource {
            endpoints,
            tls: opts.tls.clone(),
            connect_timeout: opts.connect_timeout,
            io_timeout: opts.io_timeout,
        })
    }

    fn url(&self) -> String {
        format!("etcd://{}", self.endpoints.join(","))
    }

    /// The TLS settings, or `None` for plain http (no CA given or found).
    fn tls_options(&self) -> Result<Option<TlsOptions>, SourceError> {
        let read = |p: &Pem| -> Result<Vec<u8>, SourceError> {
            p.read().map_err(|source| SourceError::ClientCert {
                pem: p.to_string(),
                source,
            })
        };
        let Some(ca) = self.tls.etcd_ca.as_ref().or(self.tls.ca.as_ref()) else {
            return Ok(None);
        };
        let ca = ca.read().map_err(|source| SourceError::CaFile {
            pem: ca.to_string(),
            source,
        })?;
        let mut tls = TlsOptions::new().ca_certificate(Certificate::from_pem(ca));
        if let (Some(cert), Some(key)) = (&self.tls.cert, &self.tls.key) {
            tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?));
        }
        Ok(Some(tls))
    }

    async fn fetch_one(
        &self,
        endpoint: &str,
        tls: Option<TlsOptions>,
        staging: &mut Staging,
        progress: &mut Progress,
    ) -> Result<(), Attempt> {
        let mut opts = ConnectOptions::new().with_connect_timeout(self.connect_timeout);
        let url = match tls {
            Some(tls) => {
                opts = opts.with_tls(tls);
                format!("https://{endpoint}")
            }
            None => format!("http://{endpoint}"),
        };
        let secs = self.io_timeout.as_secs();
        let mut client =
            match tokio::time::timeout(self.connect_timeout, Client::connect([url], Some(opts)))
                .await
            {
                Ok(Ok(c)) => c,
                Ok(Err(e)) => return Err(Attempt::Member(crate::cli::chain(&e))),
                Err(_) => {
                    return Err(Attempt::Member(format!(
                        "no connection within {:?}",
                        self.connect_timeout
                    )))
                }
            };
        let mut stream = match tokio::time::timeout(self.io_timeout, client.snapshot()).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(Attempt::Member(crate::cli::chain(&e))),
            Err(_) => {
                return Err(Attempt::Member(format!(
                    "no answer to the snapshot request within {secs}s"
                )))
            }
        };
        let mut started = false;
        let mut remaining = u64::MAX;
        loop {
            let msg = match tokio::time::timeout(self.io_timeout, stream.message()).await {
                Ok(Ok(Some(m))) => m,
                Ok(Ok(None)) => break,
                Ok(Err(e)) => return Err(Attempt::Member(crate::cli::chain(&e))),
                Err(_) => return Err(Attempt::Member(format!("the stream stalled for {secs}s"))),
            };
            if !started {
                let total = staging.len() + msg.blob().len() as u64 + msg.remaining_bytes();
                progress.start("streaming etcd snapshot", total);
                started = true;
            }
            staging.write(msg.blob()).map_err(Attempt::Fatal)?;
            remaining = msg.remaining_bytes();
            progress.set(staging.len());
        }
        if remaining != 0 {
            return Err(Attempt::Member(format!(
                "the stream ended early ({} bytes received, {remaining} announced as remaining)",
                staging.len()
            )));
        }
        progress.finish();
        Ok(())
    }
}

impl SnapshotSource for EtcdSource {
    fn describe(&self) -> String {
        self.url()
    }

    fn fetch(&self, staging: &mut Staging, progress: &mut Progress) -> Result<(), SourceError> {
        let tls = self.tls_options()?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(SourceError::Runtime)?;
        let mut tried = Vec::new();
        for ep in &self.endpoints {
            if !staging.is_empty() {
                staging.restart()?;
            }
            match rt.block_on(self.fetch_one(ep, tls.clone(), staging, progress)) {
                Ok(()) => {
                    log::info!("etcd snapshot of {} bytes from {ep}", staging.len());
                    return Ok(());
                }
                Err(Attempt::Fatal(e)) => return Err(e),
                Err(Attempt::Member(reason)) => {
                    log::warn!("etcd member {ep} gave no snapshot: {reason}");
                    tried.push(format!("{ep}: {reason}"));
                }
            }
        }
        Err(SourceError::EtcdAllFailed {
            url: self.url(),
            tried,
        })
    }
}
