//! The query API under `/api/v1`: dists, packages, versions, history, and
//! next-version with reservations (issue "Versions", item 5).
//!
//! Every route needs a token (any live one reads; reserving a number needs
//! upload rights). Answers are JSON; errors are `{error, hint}`.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::App;
use crate::deb::version::Version;
use crate::repo::catalog::{HistoryRow, Listing};
use crate::repo::next_version::NextVersion;
use crate::repo::{Actor, Door};

type Answer<T> = Result<Json<T>, ApiError>;

#[derive(Serialize)]
pub struct DistInfo {
    dist: String,
    components: Vec<String>,
    architectures: Vec<String>,
}

/// `GET /api/v1/dists`
pub async fn dists(State(app): State<Arc<App>>, headers: HeaderMap) -> Answer<Vec<DistInfo>> {
    app.authenticate(&headers).await?;
    let repo = &app.config.repository;
    Ok(Json(
        repo.dists
            .iter()
            .map(|dist| DistInfo {
                dist: dist.clone(),
                components: repo.components.clone(),
                architectures: repo.architectures.clone(),
            })
            .collect(),
    ))
}

/// A package and its versions (dpkg order, oldest first).
#[derive(Serialize)]
pub struct PackageVersions {
    package: String,
    versions: Vec<String>,
}

/// `GET /api/v1/packages`: every package in any dist, with its versions.
pub async fn packages(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
) -> Answer<Vec<PackageVersions>> {
    app.authenticate(&headers).await?;
    let rows = app.read(|repo| repo.list(None, None, None)).await?;
    Ok(Json(by_package(rows)))
}

/// `GET /api/v1/dists/{dist}/components/{component}/packages`
pub async fn packages_in(
    State(app): State<Arc<App>>,
    UrlPath((dist, component)): UrlPath<(String, String)>,
    headers: HeaderMap,
) -> Answer<Vec<PackageVersions>> {
    app.authenticate(&headers).await?;
    app.check_target(&crate::config::Target {
        dist: dist.clone(),
        component: component.clone(),
    })?;
    let rows = app
        .read(move |repo| repo.list(None, Some(&dist), Some(&component)))
        .await?;
    Ok(Json(by_package(rows)))
}

#[derive(Serialize)]
pub struct PackageDetail {
    package: String,
    /// One entry per file and place: version, architecture, dist, component,
    /// pool file name, size and SHA-256.
    files: Vec<Listing>,
}

/// `GET /api/v1/packages/{name}`
pub async fn package(
    State(app): State<Arc<App>>,
    UrlPath(name): UrlPath<String>,
    headers: HeaderMap,
) -> Answer<PackageDetail> {
    app.authenticate(&headers).await?;
    let wanted = name.clone();
    let files = app
        .read(move |repo| repo.list(Some(&wanted), None, None))
        .await?;
    if files.is_empty() {
        return Err(ApiError::not_found(format!(
            "no package {name} is published here"
        )));
    }
    Ok(Json(PackageDetail {
        package: name,
        files,
    }))
}

#[derive(Deserialize)]
pub struct HistoryQuery {
    package: Option<String>,
    /// Unix seconds.
    since: Option<i64>,
    limit: Option<u32>,
}

/// `GET /api/v1/history?package=NAME&since=UNIX&limit=N` (newest first,
/// default 100).
pub async fn history(
    State(app): State<Arc<App>>,
    Query(query): Query<HistoryQuery>,
    headers: HeaderMap,
) -> Answer<Vec<HistoryRow>> {
    app.authenticate(&headers).await?;
    let limit = query.limit.unwrap_or(100).min(10_000);
    let rows = app
        .read(move |repo| repo.history(query.package.as_deref(), query.since, limit))
        .await?;
    Ok(Json(rows))
}

#[derive(Deserialize)]
pub struct VersionQuery {
    dist: Option<String>,
    component: Option<String>,
    /// Who a reservation is for (default: the token's name).
    #[serde(rename = "for")]
    holder: Option<String>,
}

/// `GET /api/v1/packages/{name}/next-version?dist=&component=`
pub async fn next_version(
    State(app): State<Arc<App>>,
    UrlPath(name): UrlPath<String>,
    Query(query): Query<VersionQuery>,
    headers: HeaderMap,
) -> Answer<NextVersion> {
    app.authenticate(&headers).await?;
    let answer = app
        .read_mut(move |repo| {
            repo.next_version(
                &name,
                query.dist.as_deref(),
                query.component.as_deref(),
                None,
            )
        })
        .await?;
    Ok(Json(answer))
}

/// `POST /api/v1/packages/{name}/reservations?for=HOLDER`: reserves the
/// next version, like `repoctl next-version --reserve`.
pub async fn reserve(
    State(app): State<Arc<App>>,
    UrlPath(name): UrlPath<String>,
    Query(query): Query<VersionQuery>,
    headers: HeaderMap,
) -> Result<(StatusCode, Json<NextVersion>), ApiError> {
    let grant = app.authenticate(&headers).await?;
    if !grant.operator && grant.uploads.is_empty() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("token {} may not reserve versions: it has no upload scope", grant.name),
            "reserve with a token that may upload (repoctl token create NAME --upload DIST/COMPONENT)",
        ));
    }
    let holder = query.holder.unwrap_or_else(|| grant.name.clone());
    let by = Actor {
        door: Door::Http,
        name: grant.name,
    };
    let answer = app
        .read_mut(move |repo| {
            repo.next_version(
                &name,
                query.dist.as_deref(),
                query.component.as_deref(),
                Some((&holder, &by)),
            )
        })
        .await?;
    Ok((StatusCode::CREATED, Json(answer)))
}

/// Any other path under `/api/v1`.
pub async fn unknown() -> ApiError {
    ApiError::not_found("no such API route")
}

fn by_package(rows: Vec<Listing>) -> Vec<PackageVersions> {
    let mut packages: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for row in rows {
        let versions = packages.entry(row.package).or_default();
        if !versions.contains(&row.version) {
            versions.push(row.version);
        }
    }
    packages
        .into_iter()
        .map(|(package, mut versions)| {
            versions.sort_by_cached_key(|v| Version::parse(v).ok());
            PackageVersions { package, versions }
        })
        .collect()
}
