//! The online check of plugin API 1.3 (`gatehouse check --online`) for a Connect client:
//! the registered server's `get_api_version`, through the host's HTTP, read as the daily
//! `handshake` reads it, and whether the two sides still share an API version. Read only:
//! no `update_api_version`, nothing stored (that stays the `handshake` task's job). A client
//! not registered yet has nothing to reach, which is a note, not a problem.

use gatehouse_connect_wire::{
    ServerCall,
    services::read_api_version_reply,
    version::{ClientType, MAX_API_VERSION, MIN_API_VERSION, select_api_version},
};
use gatehouse_plugin_api::{Host, OnlineFinding, OnlineReport};

use crate::{
    records, remote,
    settings::ClientConfig,
    sync::{reply_error, transport_error},
};

pub fn check(host: &Host<'_>, config: &ClientConfig) -> OnlineReport {
    let mut report = OnlineReport::new();
    let id = &config.instance_id;
    let server = match records::server(host) {
        Ok(Some(server)) => server,
        Ok(None) => {
            report.push(OnlineFinding::note(format!(
                "not registered with a Connect server yet, so there is nothing to reach: run \
                 `gatehouse connect new-server --idp {id}` and add this client on the server"
            )));
            return report;
        }
        Err(error) => {
            report.push(OnlineFinding::error(format!(
                "the registration could not be read: {error}"
            )));
            return report;
        }
    };
    let help = format!(
        "the Connect server at {} must answer this host (its address, DNS, firewall); if the \
         server was reinstalled, run `gatehouse connect new-server --idp {id}` again",
        server.url
    );
    let reply = remote::exchange_with_server(
        host,
        &server,
        &ServerCall::GetApiVersion {
            client_type: ClientType::TotaraLms,
        },
    )
    .map_err(|error| transport_error("get_api_version", &server, &error))
    .and_then(|reply| {
        read_api_version_reply(reply)
            .map_err(|error| reply_error("get_api_version", &server, error))
    });
    let (min, max) = match reply {
        Ok(versions) => versions,
        Err(error) => {
            report.push(OnlineFinding::error(error.message().to_owned()).with_help(help));
            return report;
        }
    };
    match select_api_version(min, max) {
        Some(version) => {
            report.checked(format!(
                "Connect server at {}: get_api_version offers API versions {min} to {max} \
                 (this client uses {version})",
                server.url
            ));
            if version != server.api_version {
                report.push(OnlineFinding::note(format!(
                    "the registration uses API version {}; the next `handshake` task switches \
                     to {version}",
                    server.api_version
                )));
            }
        }
        None => report.push(
            OnlineFinding::error(format!(
                "the Connect server at {} speaks API versions {min} to {max}, and this client \
                 {MIN_API_VERSION} to {MAX_API_VERSION}: no version in common",
                server.url
            ))
            .with_help("upgrade the server or Gatehouse so that they share an API version"),
        ),
    }
    report
}
