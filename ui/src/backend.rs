//! What the page asks the node, and how: the same typed control replies
//! the CLI reads ([`meshtrace_node::control`]), through the daemon's
//! owner-only control socket. The page is one more client of the node, so
//! it sees exactly what `meshtrace status` and `meshtrace exposures` see.

use std::path::PathBuf;

use meshtrace_node::control::{
    self, ControlError, DeletedReply, ExposureReply, ReportRequestReply, ReportSummaryReply,
    Request, StatusReply,
};

/// The node, as the page uses it. Calls block (they are run off the async
/// threads); errors are the control socket's, in one line.
pub trait NodeApi: Send + Sync + 'static {
    /// The node's status.
    fn status(&self) -> Result<StatusReply, ControlError>;
    /// Exposures found, newest first.
    fn exposures(&self) -> Result<Vec<ExposureReply>, ControlError>;
    /// A new report request code.
    fn report_request(&self) -> Result<ReportRequestReply, ControlError>;
    /// What a certificate would publish.
    fn report_plan(&self, certificate: &str) -> Result<ReportSummaryReply, ControlError>;
    /// Publishes the report a certificate allows.
    fn report_submit(&self, certificate: &str) -> Result<ReportSummaryReply, ControlError>;
    /// Deletes everything and stops the node.
    fn delete_everything(&self) -> Result<DeletedReply, ControlError>;
}

/// The running daemon of a data directory, through its control socket.
#[derive(Clone, Debug)]
pub struct ControlSocket {
    /// The node's data directory.
    pub data_dir: PathBuf,
}

impl NodeApi for ControlSocket {
    fn status(&self) -> Result<StatusReply, ControlError> {
        control::request(&self.data_dir, &Request::Status)
    }

    fn exposures(&self) -> Result<Vec<ExposureReply>, ControlError> {
        control::request(&self.data_dir, &Request::Exposures)
    }

    fn report_request(&self) -> Result<ReportRequestReply, ControlError> {
        control::request(&self.data_dir, &Request::ReportRequest)
    }

    fn report_plan(&self, certificate: &str) -> Result<ReportSummaryReply, ControlError> {
        control::request(
            &self.data_dir,
            &Request::ReportPlan {
                certificate: certificate.to_owned(),
            },
        )
    }

    fn report_submit(&self, certificate: &str) -> Result<ReportSummaryReply, ControlError> {
        control::request(
            &self.data_dir,
            &Request::ReportSubmit {
                certificate: certificate.to_owned(),
            },
        )
    }

    fn delete_everything(&self) -> Result<DeletedReply, ControlError> {
        control::request(&self.data_dir, &Request::DeleteEverything)
    }
}
