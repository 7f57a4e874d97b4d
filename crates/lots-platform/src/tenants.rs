//! Loads the municipality configuration: one TOML file, or every `*.toml` in a folder.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use lots_domain::TenantConfig;

use crate::{Error, Result};

/// Every configured tenant, by kommunkod.
#[derive(Debug, Clone, Default)]
pub struct Tenants {
    by_kommunkod: BTreeMap<String, Arc<TenantConfig>>,
}

impl Tenants {
    /// Reads `path` (a file or a folder of `*.toml`); errors name the file, line and field.
    pub fn load(path: &Path) -> Result<Tenants> {
        let files = if path.is_dir() {
            let mut files: Vec<_> = std::fs::read_dir(path)
                .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|ext| ext == "toml"))
                .collect();
            files.sort();
            files
        } else {
            vec![path.to_owned()]
        };
        let mut configs = Vec::new();
        for file in &files {
            let text = std::fs::read_to_string(file).map_err(|e| Error::Config(format!("{}: {e}", file.display())))?;
            let cfg =
                TenantConfig::from_toml_str(&text).map_err(|e| Error::Config(format!("{}: {e}", file.display())))?;
            configs.push(cfg);
        }
        if configs.is_empty() {
            return Err(Error::Config(format!("{}: no municipality configuration (*.toml) found", path.display())));
        }
        Self::from_configs(configs)
    }

    /// Builds the set from parsed configurations, refusing duplicate kommunkoder or prefixes.
    pub fn from_configs(configs: impl IntoIterator<Item = TenantConfig>) -> Result<Tenants> {
        let mut by_kommunkod = BTreeMap::new();
        let mut prefixes = BTreeMap::new();
        for cfg in configs {
            if let Some(other) = prefixes.insert(cfg.reference_prefix.clone(), cfg.kommunkod.clone()) {
                return Err(Error::Config(format!(
                    "reference_prefix {:?} is used by both {} and {}",
                    cfg.reference_prefix, other, cfg.kommunkod
                )));
            }
            let code = cfg.kommunkod.clone();
            if by_kommunkod.insert(code.clone(), Arc::new(cfg)).is_some() {
                return Err(Error::Config(format!("kommunkod {code} is configured twice")));
            }
        }
        Ok(Tenants { by_kommunkod })
    }

    /// The tenant with this kommunkod.
    pub fn get(&self, kommunkod: &str) -> Option<&Arc<TenantConfig>> {
        self.by_kommunkod.get(kommunkod)
    }

    /// Every tenant.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<TenantConfig>> {
        self.by_kommunkod.values()
    }
}
