"""The report: tables beside the paper's numbers (:mod:`~winclip_lib.report.tables`), figures
(:mod:`~winclip_lib.report.figures`), the helpers the notebooks share (:mod:`~winclip_lib.report.notebook`) and the
inspection page of ``winclip predict`` (:mod:`~winclip_lib.report.inspection`)."""
