SELECT m.student_group_id, m.student_id
FROM student_group_member m
ORDER BY m.student_group_id, m.student_id
