//! A typed client for the REST API.

use api_types::ErrorBody;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Failure;
use crate::config::CliConfig;

pub struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
    pub env: String,
}

impl Client {
    /// A client for the server `cfg` names, trusting the CA it records (else the system's
    /// roots).
    pub fn new(cfg: &CliConfig, env: &str) -> Result<Client, Failure> {
        tls::install_default_provider();
        // Idle connections are dropped before the server would close them (60 s).
        let mut http =
            reqwest::Client::builder().pool_idle_timeout(std::time::Duration::from_secs(30));
        if let Some(pem) = &cfg.ca_cert {
            let tls = tls::trusting_client_config(pem)
                .map_err(|e| Failure::input(format!("the CA certificate to trust: {e}")))?;
            http = http.tls_backend_preconfigured((*tls).clone());
        }
        let http = http
            .build()
            .map_err(|e| Failure::input(format!("HTTP client: {e}")))?;
        Ok(Client {
            http,
            base: cfg.url.trim_end_matches('/').to_string(),
            token: cfg.token.clone(),
            env: env.to_string(),
        })
    }

    /// The same client acting in another environment.
    pub fn in_env(&self, env: &str) -> Client {
        Client {
            http: self.http.clone(),
            base: self.base.clone(),
            token: self.token.clone(),
            env: env.to_string(),
        }
    }

    /// URL of a path under `/v1/environments/{env}`.
    pub fn env_url(&self, path: &str) -> String {
        format!("{}/v1/environments/{}{path}", self.base, self.env)
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response, Failure> {
        let resp = req.bearer_auth(&self.token).send().await.map_err(|e| {
            Failure::unreachable(format!(
                "cannot reach the Drover server at {}: {}",
                self.base,
                root_cause(&e)
            ))
        })?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        Err(Self::failure(resp).await)
    }

    /// The failure an unsuccessful answer stands for, with the server's message.
    async fn failure(resp: reqwest::Response) -> Failure {
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        let message = serde_json::from_str::<ErrorBody>(&text)
            .map(|b| b.error.message)
            .unwrap_or_else(|_| format!("server answered {status}: {text}"));
        match status.as_u16() {
            401 | 403 => Failure::unreachable(message),
            400 | 404 | 413 | 422 => Failure::input(message),
            _ => Failure::failed(message),
        }
    }

    /// A WebSocket on `path` (under the environment), over the same connection settings
    /// (TLS trust, token) as every other request.
    pub async fn websocket(
        &self,
        path: &str,
    ) -> Result<tokio_tungstenite::WebSocketStream<reqwest::Upgraded>, Failure> {
        use tokio_tungstenite::tungstenite::handshake::client::generate_key;
        use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
        let key = generate_key();
        let req = self
            .http
            .get(self.env_url(path))
            .header("Connection", "Upgrade")
            .header("Upgrade", "websocket")
            .header("Sec-WebSocket-Version", "13")
            .header("Sec-WebSocket-Key", &key)
            .bearer_auth(&self.token);
        let resp = req.send().await.map_err(|e| {
            Failure::unreachable(format!(
                "cannot reach the Drover server at {}: {}",
                self.base,
                root_cause(&e)
            ))
        })?;
        if resp.status() != reqwest::StatusCode::SWITCHING_PROTOCOLS {
            return Err(Self::failure(resp).await);
        }
        let accepted = resp
            .headers()
            .get("Sec-WebSocket-Accept")
            .is_some_and(|v| v.as_bytes() == derive_accept_key(key.as_bytes()).as_bytes());
        if !accepted {
            return Err(Failure::failed(
                "the server answered the WebSocket upgrade wrongly",
            ));
        }
        let io = resp
            .upgrade()
            .await
            .map_err(|e| Failure::failed(format!("WebSocket upgrade: {e}")))?;
        Ok(tokio_tungstenite::WebSocketStream::from_raw_socket(
            io,
            tokio_tungstenite::tungstenite::protocol::Role::Client,
            None,
        )
        .await)
    }

    /// Sends `req` and decodes a JSON answer.
    async fn json<T: DeserializeOwned>(&self, req: reqwest::RequestBuilder) -> Result<T, Failure> {
        self.send(req)
            .await?
            .json()
            .await
            .map_err(|e| Failure::failed(format!("bad response from server: {e}")))
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, Failure> {
        self.json(self.http.get(self.env_url(path))).await
    }

    /// GET of a path under `/v1` itself (not an environment's), like `/environments`.
    pub async fn get_v1<T: DeserializeOwned>(&self, path: &str) -> Result<T, Failure> {
        self.json(self.http.get(format!("{}/v1{path}", self.base)))
            .await
    }

    /// PUT to a path under `/v1` itself.
    pub async fn put_v1<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, Failure> {
        self.json(self.http.put(format!("{}/v1{path}", self.base)).json(body))
            .await
    }

    /// PUT to a path under `/v1` itself, with no answer body.
    pub async fn put_v1_empty<B: Serialize>(&self, path: &str, body: &B) -> Result<(), Failure> {
        self.send(self.http.put(format!("{}/v1{path}", self.base)).json(body))
            .await
            .map(|_| ())
    }

    /// POST to a path under `/v1` itself.
    pub async fn post_v1<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, Failure> {
        self.json(self.http.post(format!("{}/v1{path}", self.base)).json(body))
            .await
    }

    /// DELETE of a path under `/v1` itself.
    pub async fn delete_v1(&self, path: &str) -> Result<(), Failure> {
        self.send(self.http.delete(format!("{}/v1{path}", self.base)))
            .await?;
        Ok(())
    }

    pub async fn get_text(&self, path: &str) -> Result<String, Failure> {
        let resp = self.send(self.http.get(self.env_url(path))).await?;
        resp.text()
            .await
            .map_err(|e| Failure::failed(format!("bad response from server: {e}")))
    }

    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, Failure> {
        self.json(self.http.post(self.env_url(path)).json(body))
            .await
    }

    pub async fn post_bytes<T: DeserializeOwned>(
        &self,
        path: &str,
        body: Vec<u8>,
    ) -> Result<T, Failure> {
        let req = self
            .http
            .post(self.env_url(path))
            .header("Content-Type", "application/x-tar")
            .body(body);
        self.json(req).await
    }

    pub async fn put<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, Failure> {
        self.json(self.http.put(self.env_url(path)).json(body))
            .await
    }

    /// A POST without a body, decoding a JSON answer.
    pub async fn post_empty<T: DeserializeOwned>(&self, path: &str) -> Result<T, Failure> {
        self.json(self.http.post(self.env_url(path))).await
    }

    pub async fn delete(&self, path: &str) -> Result<(), Failure> {
        self.send(self.http.delete(self.env_url(path))).await?;
        Ok(())
    }

    /// A DELETE that may answer 202 with a body (the parts still going): that body, or
    /// `None` on 204.
    pub async fn delete_waiting<T: DeserializeOwned>(
        &self,
        path: &str,
    ) -> Result<Option<T>, Failure> {
        let resp = self.send(self.http.delete(self.env_url(path))).await?;
        if resp.status() == reqwest::StatusCode::NO_CONTENT {
            return Ok(None);
        }
        resp.json()
            .await
            .map(Some)
            .map_err(|e| Failure::failed(format!("bad response from server: {e}")))
    }

    pub async fn stream(&self, path: &str) -> Result<reqwest::Response, Failure> {
        self.send(self.http.get(self.env_url(path))).await
    }
}

fn root_cause(e: &dyn std::error::Error) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}
