//! `authzd serve`: the start-up sequence of a server — tokens, TLS files,
//! the metrics listener, the primary of a replica, the listeners (gRPC and,
//! with `--http-listen`, HTTP/JSON), the store,
//! the trace exporter — each refused with the reason before anything
//! serves, then the wiring of `authzd-server` until a shutdown signal. Must
//! not hold rules of the model or of the API.

use tokio::net::TcpListener;

use super::ServeArgs;
use authzd_server as server;
use authzd_service::Service;

/// `authzd serve`: checks every setting, binds, opens the store, serves
/// until SIGINT or SIGTERM; false (after logging why) if any step failed.
pub async fn command(args: &ServeArgs) -> bool {
    let config = args.config();
    let Some(callers) = super::callers(&config) else {
        return false;
    };
    let tls = match args.tls.load() {
        Ok(tls) => tls,
        Err(e) => {
            tracing::error!(error = %e, "cannot use the TLS files");
            return false;
        }
    };
    if tls.is_none() && !config.listen.ip().is_loopback() {
        tracing::warn!(listen = %config.listen, "serving plaintext on a non-loopback address: calls, tokens and answers cross the network unencrypted; give --tls-cert and --tls-key, or keep a sidecar's TLS in front");
    }
    if let Some(listen) = config.metrics_listen {
        if let Err(e) = authzd_service::metrics::serve(listen) {
            tracing::error!(error = %e, metrics_listen = %listen, "cannot serve metrics");
            return false;
        }
        tracing::info!(metrics_listen = %listen, "serving Prometheus metrics at /metrics");
    }
    let primary = match args.primary().transpose() {
        Ok(remote) => remote.map(|r| server::Primary {
            endpoint: r.endpoint().clone(),
            authorization: r.authorization(),
        }),
        Err(e) => {
            tracing::error!(error = %e, "cannot set up the connection to the primary");
            return false;
        }
    };
    let listener = match TcpListener::bind(config.listen).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, listen = %config.listen, "cannot listen");
            return false;
        }
    };
    let http = match config.http_listen {
        None => None,
        Some(listen) => {
            // The HTTP listener trusts callers exactly as the gRPC one
            // does: without tokens, only on loopback (or --insecure).
            if let Err(reason) =
                authzd_service::auth::exposure(listen, config.tokens.is_some(), config.insecure)
            {
                tracing::error!("{reason}");
                return false;
            }
            if tls.is_none() && !listen.ip().is_loopback() {
                tracing::warn!(http_listen = %listen, "serving HTTP/JSON in plaintext on a non-loopback address; give --tls-cert and --tls-key");
            }
            match TcpListener::bind(listen).await {
                Ok(listener) => Some(server::http::HttpEdge {
                    listener,
                    cors_origins: config.http_cors_origins.clone(),
                    playground: Some(std::sync::Arc::new(super::schema_test::Runner)),
                }),
                Err(e) => {
                    tracing::error!(error = %e, http_listen = %listen, "cannot listen");
                    return false;
                }
            }
        }
    };
    let service = match Service::open(config.clone()).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, data = %config.store_location(), "cannot start");
            return false;
        }
    };
    let traces = match &config.otlp_endpoint {
        None => None,
        Some(endpoint) => match authzd_server::api::traces::install(endpoint) {
            Ok(traces) => {
                tracing::info!(otlp_endpoint = %endpoint, "exporting a span per call over OTLP");
                Some(traces)
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot export traces");
                return false;
            }
        },
    };
    // The bound address, not the requested one: with port 0 this is how a
    // caller (or a test) learns the port.
    let bound = listener
        .local_addr()
        .map_or_else(|_| config.listen.to_string(), |a| a.to_string());
    let transport = match &tls {
        Some(t) if t.client_ca.is_some() => "mtls",
        Some(_) => "tls",
        None => "plaintext",
    };
    let shutdown = shutdown_signal();
    tracing::info!(listen = %bound, data = %config.store_location(), revision = %service.snapshot().revision, transport, "authzd serving");
    if let Some(edge) = &http {
        let bound = edge
            .listener
            .local_addr()
            .map_or_else(|_| "?".to_string(), |a| a.to_string());
        tracing::info!(http_listen = %bound, cors_origins = edge.cors_origins.len(), "serving the HTTP/JSON API (GET /openapi.json describes it)");
    }
    tokio::spawn(super::reload_on_hangup(callers.clone()));
    if let Some(follow) = &config.follow {
        let tenants = if follow.tenants.is_empty() {
            "all".to_string()
        } else {
            follow
                .tenants
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        tracing::info!(primary = %follow.primary, %tenants, "read replica: reads are local, writes go to the primary");
    }
    let served = server::serve_edges(
        service,
        callers,
        listener,
        tls.as_ref(),
        primary,
        http,
        shutdown,
    )
    .await;
    if let Some(traces) = traces {
        traces.stop().await;
    }
    match served {
        Ok(()) => true,
        Err(e) => {
            tracing::error!(error = %e, "server failed");
            false
        }
    }
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed when this is
/// called, not when the future is first polled, so a signal that arrives
/// right after the server announced itself still shuts it down cleanly.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let interrupt = tokio::signal::ctrl_c();
    async move {
        #[cfg(unix)]
        let terminate = async move {
            match terminate {
                Some(mut s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let terminate = std::future::pending::<()>();
        tokio::select! {
            _ = interrupt => {},
            _ = terminate => {},
        }
    }
}
