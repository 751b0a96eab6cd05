"""The report: tables beside the paper's numbers (:mod:`~winclip_lib.report.tables`), the names they and the figures
give the metrics (:mod:`~winclip_lib.report.names`), the figures by concept (:mod:`~winclip_lib.report.figures`) and
the helpers the notebooks share (:mod:`~winclip_lib.report.notebook`). The inspection page of ``winclip predict`` is
:mod:`winclip_lib.inspection`'s."""
