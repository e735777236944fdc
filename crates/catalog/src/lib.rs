//! The app catalog's pure core: templates in, compose projects out.
//!
//! No I/O, no clock, no randomness: a catalog arrives as a virtual file tree (path relative
//! to the catalog root → bytes), random bytes for generated passwords come from the caller.
//! The shell (store, API, CLI, reading folders and git repositories, the embedded built-in
//! catalog) is elsewhere.
//!
//! # Use
//!
//! ```text
//! index(name, &files) -> Index                         // every template, and the problems
//! index.templates["wordpress"].latest() -> &Version     // or .version("6.5.3"), .newer_than(v)
//! resolve_answers(&version.questions, &given, &stored, &services, &mut random)
//!     -> Result<Answers, Vec<AnswerError>>             // each error names its question
//! render(&template, "6.5.3", &answers, "blog") -> Result<Rendered, RenderError>
//! new_questions(&old_version, &new_version, &stored) -> Vec<Question>   // what an upgrade asks
//! ```
//!
//! # Catalog layouts (detected per template)
//!
//! **Drover**: `templates/<name>/template.yml` (`name`, `description`, `category` — one or
//! a list —, `icon` — a file beside it —, `maintainer`, `homepage`, `license`) and one
//! folder per version, `templates/<name>/<version>/`, holding `compose.yaml`,
//! `questions.yml` (`questions:` list, optional `description:`) and an optional
//! `README.md`. Answers reach the compose file through `${VAR}` interpolation.
//!
//! **Rancher 1.x**, read as it is: `templates/<name>/config.yml` (`name`, `description`,
//! `version`, `category`, `maintainer`, `license`, `projectURL`), `catalogIcon-*`, and
//! numbered version folders with `docker-compose.yml` or `docker-compose.yml.tpl` (a Go
//! template: see [`gotpl`]) and `rancher-compose.yml`, whose `.catalog` section holds
//! `name`, `version`, `description`, `minimum_rancher_version`, `upgrade_from` and
//! `questions`. How compose v1/v2 files, `rancher-compose.yml` and `io.rancher.*` labels
//! become Drover's: see [`rancher`].
//!
//! Versions are ordered by [`compare_versions`] (semver-ish, the folder name as
//! tie-break); the latest is the highest.
//!
//! # Questions
//!
//! Keys: `variable`, `label`, `description`, `type` (see [`QuestionType`]), `required`,
//! `default`, `options` (enum), `min`/`max` (an int's range, else a length; `min_length`
//! and `max_length` are accepted too), `pattern` (a regular expression the whole answer
//! matches), `group`, `show_if` (see [`ShowIf`]: `ENABLE_X=true`, `A=1&&B!=2`, `A=x||A=y`;
//! a hidden question is neither required nor checked), `generate: true` (passwords: made
//! from the caller's random bytes when no answer exists, then stored like any answer, so
//! an upgrade keeps it). Passwords and certificates are secret ([`Answers::secret`]): the
//! shell stores them encrypted.
//!
//! # Errors
//!
//! Indexing never fails: a template or version that cannot be read is a [`Problem`] (file
//! and reason) and the rest loads. Answer errors name the question; render errors name the
//! question, or the file (from the catalog root) with line and column.

pub mod gotpl;
mod index;
mod model;
mod questions;
pub mod rancher;
mod render;
mod synthetic;
mod yaml;

pub use index::{MAX_TEMPLATE_FILE, compare_versions, index};
pub use model::{Format, Index, Problem, SourceFile, Template, Version};
pub use questions::{
    AnswerError, Answers, GENERATED_LEN, Question, QuestionType, ShowIf, check_answer,
    check_answers, generate_password, is_shown, new_questions, resolve_answers,
};
pub use render::{Located, RenderError, Rendered, render};
pub use synthetic::synthetic_catalog;

#[cfg(test)]
mod tests;
