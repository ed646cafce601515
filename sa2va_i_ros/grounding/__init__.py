"""Language grounding: a query on frames -> keyframe masks and the tracker's seed (Sa2VA-i, SaSaSa2VA).

It sits above ``tracking`` because its results are the tracker's input
(``tracking.Grounding``) and SaSaSa2VA decodes its clips with the tracker's SAM2
runner and memory.
"""
