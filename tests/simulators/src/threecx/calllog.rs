//! `GET /xapi/v1/ReportCallLogData/Pbx.GetCallLogData(...)`, operationId
//! `GetCallLogData`: the call log report, one row per segment, grouped by call.

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use chrono::{DateTime, FixedOffset};
use serde_json::Value;

use super::convert;
use super::error::ODataError;
use super::functions::{NamedArgs, bool_arg, datetime_arg, int_arg, parse_invocation, string_arg};
use super::routes::{options, to_rows};
use super::schema::CALL_LOG_DATA;
use super::state::{Shared, lock};

const FUNCTION: &str = "Pbx.GetCallLogData";

/// The period of the 11 path parameters, all required by the spec. The
/// other nine are validated (type and presence) and otherwise ignored: the
/// simulator assumes 0 / empty means "all", which is what clients send.
#[derive(Debug)]
pub(crate) struct CallLogParams {
    pub period_from: DateTime<FixedOffset>,
    pub period_to: DateTime<FixedOffset>,
}

impl CallLogParams {
    /// Parses the argument list; a missing, repeated, unknown or mistyped
    /// parameter is a 400 naming it.
    pub fn parse(args: Vec<(String, String)>) -> Result<Self, ODataError> {
        let mut args = NamedArgs::new(FUNCTION, args)?;
        let mut take = |name: &'static str| args.take(name).map(|raw| (name, raw));
        let (from, to) = (take("periodFrom")?, take("periodTo")?);
        let params = Self {
            period_from: datetime_arg(from.0, &from.1)?,
            period_to: datetime_arg(to.0, &to.1)?,
        };
        for name in [
            "sourceType",
            "destinationType",
            "callsType",
            "callTimeFilterType",
        ] {
            int_arg(name, &take(name)?.1)?;
        }
        for name in [
            "sourceFilter",
            "destinationFilter",
            "callTimeFilterFrom",
            "callTimeFilterTo",
        ] {
            string_arg(name, &take(name)?.1)?;
        }
        bool_arg("hidePcalls", &take("hidePcalls")?.1)?;
        args.finish()?;
        Ok(params)
    }
}

/// operationId `GetCallLogData`: rows of the segments whose start lies in
/// `[periodFrom, periodTo)`, grouped by `CallId`, then the OData options.
pub(crate) async fn get_call_log_data(
    State(shared): State<Shared>,
    Path(segment): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ODataError> {
    let not_found = || {
        ODataError::not_found(format!(
            "No function '{segment}' is bound to ReportCallLogData."
        ))
    };
    let invocation = parse_invocation(&segment).ok_or_else(not_found)??;
    if invocation.name != FUNCTION {
        return Err(not_found());
    }
    let st = lock(&shared);
    if st.forbidden {
        return Err(ODataError::forbidden());
    }
    let params = CallLogParams::parse(invocation.args)?;
    let opts = options(query.as_deref(), &CALL_LOG_DATA, &st)?;
    let (from, to) = (params.period_from, params.period_to);
    let segments = st
        .segments()
        .filter(|s| from <= s.start && s.start < to)
        .collect();
    let rows = to_rows(convert::call_log_rows(segments, &st.recordings));
    let context = "Collection(Pbx.CallLogData)";
    Ok(Json(super::odata::collection_body(
        &st.base_url,
        context,
        &opts,
        rows,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::threecx::functions::parse_invocation;

    const FULL: &str = "Pbx.GetCallLogData(periodFrom=2025-03-01T00:00:00Z,periodTo=2025-03-02T00:00:00+01:00,sourceType=0,sourceFilter='',destinationType=0,destinationFilter='',callsType=0,callTimeFilterType=0,callTimeFilterFrom='0:00:0',callTimeFilterTo='0:00:0',hidePcalls=true)";

    fn parse(segment: &str) -> Result<CallLogParams, ODataError> {
        CallLogParams::parse(parse_invocation(segment).unwrap().unwrap().args)
    }

    #[test]
    fn parses_the_documented_call() {
        let p = parse(FULL).unwrap();
        assert_eq!(
            p.period_to.to_utc().to_rfc3339(),
            "2025-03-01T23:00:00+00:00"
        );
        assert_eq!(p.period_from.to_rfc3339(), "2025-03-01T00:00:00+00:00");
    }

    #[test]
    fn each_missing_parameter_is_named() {
        let err = parse(&FULL.replace(",hidePcalls=true", "")).unwrap_err();
        assert_eq!(err.target.as_deref(), Some("hidePcalls"));
        let err = parse(&FULL.replace("periodTo=2025-03-02T00:00:00+01:00,", "")).unwrap_err();
        assert!(err.message.contains("'periodTo'"), "{}", err.message);
    }

    #[test]
    fn bad_values_and_extra_parameters_are_400() {
        let err = parse(&FULL.replace("sourceType=0", "sourceType=x")).unwrap_err();
        assert_eq!(err.target.as_deref(), Some("sourceType"));
        let err = parse(&FULL.replace("sourceFilter=''", "sourceFilter=bare")).unwrap_err();
        assert_eq!(err.target.as_deref(), Some("sourceFilter"));
        let err = parse(&FULL.replace("hidePcalls=true", "hidePcalls=true,extra=1")).unwrap_err();
        assert!(err.message.contains("'extra'"));
    }
}
